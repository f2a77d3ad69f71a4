//! SASL client mechanisms for SMTP AUTH (RFC 4954), sans-IO: each is a small state machine
//! that gives an initial response, is fed the decoded `334` challenges and answers each,
//! and is asked at the `235` whether the server proved itself (SCRAM's mutual
//! authentication). The session does the base64 and the SMTP; nothing here does I/O.
//!
//! Which mechanism is used depends on the secret ([`Mechanism::preference`]):
//! a token tries XOAUTH2 then OAUTHBEARER; a password SCRAM-SHA-256, SCRAM-SHA-1, PLAIN,
//! LOGIN; a client certificate EXTERNAL. CRAM-MD5 is only used when forced.

mod md5;
mod saslprep;
mod scram;

use std::fmt;

pub use scram::{ITERATION_CEILING, ITERATION_FLOOR};

/// A SASL mechanism this engine speaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616, sent as an initial response.
    Plain,
    /// The de-facto LOGIN mechanism: user and password as two 334 answers.
    Login,
    /// Google's and Microsoft's OAuth 2.0 mechanism.
    XOAuth2,
    /// RFC 7628.
    OAuthBearer,
    /// RFC 7677.
    ScramSha256,
    /// RFC 5802.
    ScramSha1,
    /// RFC 2195; only when forced.
    CramMd5,
    /// RFC 4422 Appendix A: the TLS client certificate.
    External,
}

/// What kind of secret a mechanism proves possession of.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SecretKind {
    Password,
    Token,
    ClientCertificate,
}

impl SecretKind {
    pub fn describe(self) -> &'static str {
        match self {
            SecretKind::Password => "a password",
            SecretKind::Token => "an OAuth 2.0 token",
            SecretKind::ClientCertificate => "a TLS client certificate",
        }
    }
}

impl Mechanism {
    pub const ALL: [Mechanism; 8] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::XOAuth2,
        Mechanism::OAuthBearer,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::CramMd5,
        Mechanism::External,
    ];

    /// The name in the EHLO `AUTH` line and the `AUTH` command.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::External => "EXTERNAL",
        }
    }

    /// A mechanism by name, case-insensitively (`scram-sha-256`).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The names, lower-cased, for usage messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|m| m.name().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The secret this mechanism needs.
    pub fn secret_kind(self) -> SecretKind {
        match self {
            Mechanism::XOAuth2 | Mechanism::OAuthBearer => SecretKind::Token,
            Mechanism::External => SecretKind::ClientCertificate,
            _ => SecretKind::Password,
        }
    }

    /// The order mechanisms are tried in when none is forced. With a password, SCRAM
    /// first: the password never reaches the server and the server proves it knows it
    /// (RFC 5802 §1), at the cost of two round trips more than PLAIN. CRAM-MD5 is never
    /// chosen: it needs a server that stores the password in recoverable form and rests on
    /// MD5.
    pub fn preference(kind: SecretKind) -> &'static [Mechanism] {
        match kind {
            SecretKind::Token => &[Mechanism::XOAuth2, Mechanism::OAuthBearer],
            SecretKind::Password => &[
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain,
                Mechanism::Login,
            ],
            SecretKind::ClientCertificate => &[Mechanism::External],
        }
    }

    /// Whether AUTH with this mechanism's initial response may be followed by MAIL, RCPT
    /// and DATA in the same flight. RFC 4954 §4 allows it for one-step mechanisms; XOAUTH2
    /// and OAUTHBEARER are one step only when they succeed: on failure the server sends a
    /// 334 error challenge and would read the pipelined MAIL as the SASL response.
    pub fn pipelinable(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::External)
    }
}

/// What proves the user's identity. `Debug` never shows a password or token.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Password(String),
    /// An OAuth 2.0 access token (RFC 6750 bearer token).
    Token(String),
    /// The certificate presented in the TLS handshake; nothing is sent in AUTH.
    ClientCertificate,
}

impl Secret {
    pub fn kind(&self) -> SecretKind {
        match self {
            Secret::Password(_) => SecretKind::Password,
            Secret::Token(_) => SecretKind::Token,
            Secret::ClientCertificate => SecretKind::ClientCertificate,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::Password(_) => "Password(<redacted>)",
            Secret::Token(_) => "Token(<redacted>)",
            Secret::ClientCertificate => "ClientCertificate",
        })
    }
}

/// A user name and what proves it. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub secret: Secret,
}

impl Credentials {
    pub fn password(user: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            user: user.into(),
            secret: Secret::Password(password.into()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ user: {:?}, secret: {:?} }}",
            self.user, self.secret
        )
    }
}

/// Why a SASL exchange could not go on, on the client's side.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// RFC 5802 §3: the server's signature is how it proves it holds the password's
    /// verifier. Without the proof it may be an impostor, so the session stops.
    #[error(
        "the server could not prove it knows the password (wrong SCRAM server signature); \
         it may not be the server it claims to be"
    )]
    ServerSignature,
    #[error(
        "the server could not prove it knows the password (it accepted without sending its \
         SCRAM server signature)"
    )]
    NoServerSignature,
    /// `e=` in a SCRAM server message (RFC 5802 §7).
    #[error("the server reported a SCRAM error: {0}")]
    ServerError(String),
    #[error(
        "the server asks for {0} SCRAM iterations, fewer than the floor of {ITERATION_FLOOR} \
         (RFC 7677 §4): refused as a downgrade"
    )]
    TooFewIterations(u32),
    #[error(
        "the server asks for {0} SCRAM iterations, more than the ceiling of {ITERATION_CEILING}"
    )]
    TooManyIterations(u32),
    /// RFC 5802 §5.1: the server's nonce must start with the client's.
    #[error("the server's SCRAM nonce does not extend the client's (RFC 5802 §5.1)")]
    NonceMismatch,
    /// The server's challenge is not what the mechanism defines.
    #[error("malformed challenge: {0}")]
    Malformed(String),
    /// A challenge where the mechanism expects none.
    #[error("unexpected challenge: {0}")]
    Unexpected(String),
    /// The credentials cannot be used with this mechanism.
    #[error("{0}")]
    BadCredentials(String),
}

impl SaslError {
    /// A server that breaks the mechanism is a protocol error; every other failure means
    /// no authentication took place.
    pub fn kind(&self) -> super::failure::Failure {
        match self {
            SaslError::Malformed(_) | SaslError::Unexpected(_) => super::failure::Failure::Protocol,
            _ => super::failure::Failure::Auth,
        }
    }
}

#[derive(Debug)]
enum State {
    /// PLAIN and EXTERNAL: the initial response is everything.
    OneStep,
    Login {
        step: u8,
    },
    /// XOAUTH2 and OAUTHBEARER: a challenge is the server's JSON error, answered with
    /// `dummy` so that the server can send its final 535.
    Bearer {
        dummy: &'static [u8],
        error: Option<String>,
    },
    Scram(Box<scram::Scram>),
    CramMd5 {
        answered: bool,
    },
}

/// One client side of one SASL exchange.
pub struct Client {
    mechanism: Mechanism,
    user: String,
    secret: Secret,
    /// Not yet sent: with the AUTH command, or as the answer to the first (empty)
    /// challenge when it would make the command line too long (RFC 4954 §4).
    initial: Option<Vec<u8>>,
    state: State,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("mechanism", &self.mechanism)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Start `mechanism` with `credentials`. `server` is the host name and port dialled,
    /// for OAUTHBEARER (RFC 7628 §3.1: optional, sent when known).
    pub fn new(
        mechanism: Mechanism,
        credentials: &Credentials,
        server: Option<(&str, u16)>,
    ) -> Result<Client, SaslError> {
        let kind = credentials.secret.kind();
        if mechanism.secret_kind() != kind {
            return Err(SaslError::BadCredentials(format!(
                "needs {}, but {} is configured",
                mechanism.secret_kind().describe(),
                kind.describe()
            )));
        }
        let user = credentials.user.as_str();
        let secret = match &credentials.secret {
            Secret::Password(s) | Secret::Token(s) => s.as_str(),
            Secret::ClientCertificate => "",
        };
        let (initial, state) = match mechanism {
            Mechanism::Plain => (Some(plain(user, secret)?), State::OneStep),
            // RFC 4422 Appendix A: an empty authorization identity, "=" on the wire, asks
            // the server to derive it from the certificate.
            Mechanism::External => (Some(Vec::new()), State::OneStep),
            Mechanism::Login => (None, State::Login { step: 0 }),
            Mechanism::CramMd5 => (None, State::CramMd5 { answered: false }),
            Mechanism::XOAuth2 => (
                Some(xoauth2(user, secret)?),
                State::Bearer {
                    dummy: b"",
                    error: None,
                },
            ),
            Mechanism::OAuthBearer => (
                Some(oauthbearer(user, secret, server)?),
                State::Bearer {
                    // RFC 7628 §3.2.3: the client answers an error with a single %x01.
                    dummy: b"\x01",
                    error: None,
                },
            ),
            Mechanism::ScramSha256 | Mechanism::ScramSha1 => {
                let hash = if mechanism == Mechanism::ScramSha256 {
                    scram::Hash::Sha256
                } else {
                    scram::Hash::Sha1
                };
                let s = scram::Scram::new(hash, user, secret, nonce())?;
                (Some(s.client_first()), State::Scram(Box::new(s)))
            }
        };
        Ok(Client {
            mechanism,
            user: user.to_string(),
            secret: credentials.secret.clone(),
            initial,
            state,
        })
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The initial response (RFC 4422 §3.3), if the mechanism has one and it was not
    /// sent yet.
    pub fn initial_response(&self) -> Option<&[u8]> {
        self.initial.as_deref()
    }

    /// The initial response went with the AUTH command.
    pub fn initial_sent(&mut self) {
        self.initial = None;
    }

    /// The response to a decoded `334` challenge.
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        if let Some(initial) = self.initial.take() {
            // RFC 4954 §4: AUTH without the initial response gets an empty challenge,
            // answered with what would have been the initial response.
            if !challenge.is_empty() {
                return Err(SaslError::Unexpected(
                    "a non-empty challenge before the initial response".into(),
                ));
            }
            return Ok(initial);
        }
        let password = match &self.secret {
            Secret::Password(p) => p.as_str(),
            _ => "",
        };
        match &mut self.state {
            State::OneStep => Err(SaslError::Unexpected(format!(
                "{} is complete after its initial response",
                self.mechanism.name()
            ))),
            State::Login { step } => {
                let answer = match step {
                    0 => self.user.as_bytes().to_vec(),
                    1 => password.as_bytes().to_vec(),
                    _ => {
                        return Err(SaslError::Unexpected(
                            "LOGIN asked for more than user and password".into(),
                        ));
                    }
                };
                *step += 1;
                Ok(answer)
            }
            State::CramMd5 { answered } => {
                if *answered {
                    return Err(SaslError::Unexpected(
                        "CRAM-MD5 has only one challenge".into(),
                    ));
                }
                if challenge.is_empty() {
                    return Err(SaslError::Malformed("empty CRAM-MD5 challenge".into()));
                }
                *answered = true;
                Ok(cram_md5(&self.user, password, challenge))
            }
            State::Bearer { dummy, error } => {
                if error.is_some() {
                    return Err(SaslError::Unexpected(format!(
                        "a second {} challenge",
                        self.mechanism.name()
                    )));
                }
                *error = Some(oauth_error(challenge));
                Ok(dummy.to_vec())
            }
            State::Scram(s) => s.step(challenge),
        }
    }

    /// The server said 235. For SCRAM, only a verified server signature makes this
    /// a success (RFC 5802 §3).
    pub fn finish(&self) -> Result<(), SaslError> {
        match &self.state {
            State::Scram(s) if !s.verified() => Err(SaslError::NoServerSignature),
            _ => Ok(()),
        }
    }

    /// What the server's error challenge said, for the message about its final 535.
    pub fn failure_detail(&self) -> Option<&str> {
        match &self.state {
            State::Bearer { error, .. } => error.as_deref(),
            _ => None,
        }
    }
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`.
fn plain(user: &str, password: &str) -> Result<Vec<u8>, SaslError> {
    if user.contains('\0') || password.contains('\0') {
        return Err(SaslError::BadCredentials(
            "PLAIN cannot carry a NUL in the user name or password".into(),
        ));
    }
    let mut ir = Vec::with_capacity(user.len() + password.len() + 2);
    ir.push(0);
    ir.extend_from_slice(user.as_bytes());
    ir.push(0);
    ir.extend_from_slice(password.as_bytes());
    Ok(ir)
}

/// The separator of XOAUTH2 and OAUTHBEARER fields may not appear inside one.
fn check_no_ctrl_a(what: &str, value: &str) -> Result<(), SaslError> {
    if value.contains('\x01') {
        return Err(SaslError::BadCredentials(format!(
            "the {what} contains a \\x01 byte"
        )));
    }
    Ok(())
}

/// `user=USER ^A auth=Bearer TOKEN ^A ^A`.
fn xoauth2(user: &str, token: &str) -> Result<Vec<u8>, SaslError> {
    check_no_ctrl_a("user name", user)?;
    check_no_ctrl_a("token", token)?;
    Ok(format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes())
}

/// RFC 7628 §3.1: the GS2 header `n,a=USER,` then `^A`-separated key=value pairs.
fn oauthbearer(user: &str, token: &str, server: Option<(&str, u16)>) -> Result<Vec<u8>, SaslError> {
    check_no_ctrl_a("user name", user)?;
    check_no_ctrl_a("token", token)?;
    let mut out = format!("n,a={},\x01", scram::saslname(user));
    if let Some((host, port)) = server {
        check_no_ctrl_a("host name", host)?;
        out.push_str(&format!("host={host}\x01port={port}\x01"));
    }
    out.push_str(&format!("auth=Bearer {token}\x01\x01"));
    Ok(out.into_bytes())
}

/// RFC 2195 §2: `user SP hex(HMAC-MD5(password, challenge))`.
fn cram_md5(user: &str, password: &str, challenge: &[u8]) -> Vec<u8> {
    let digest = md5::hmac_md5(password.as_bytes(), challenge);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{user} {hex}").into_bytes()
}

/// 18 random bytes, base64: 24 printable characters, none of them a comma (RFC 5802 §7).
fn nonce() -> String {
    use base64::Engine as _;
    #[cfg(test)]
    if let Some(fixed) = test_nonce::get() {
        return fixed;
    }
    let mut bytes = [0u8; 18];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut bytes).is_err() {
        // ring reads the kernel's getrandom(2); it does not fail on a system that booted.
        // Should it, a nonce from the clock still differs per exchange, which is all the
        // client nonce must do: its secrecy is not relied on.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes[..16].copy_from_slice(&now.to_le_bytes());
        bytes[16..].copy_from_slice(&(std::process::id() as u16).to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Session tests replay RFC exchanges byte for byte, which needs the RFC's client nonce.
#[cfg(test)]
pub(crate) mod test_nonce {
    use std::cell::RefCell;

    thread_local! {
        static NONCE: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    pub fn set(nonce: &str) {
        NONCE.with(|n| *n.borrow_mut() = Some(nonce.to_string()));
    }

    pub(super) fn get() -> Option<String> {
        NONCE.with(|n| n.borrow().clone())
    }
}

/// The server's JSON error challenge (RFC 7628 §3.2.2; Google's XOAUTH2 sends the same
/// shape) in a few words: `status=401`, plus `error` fields when present. A challenge that
/// is not a JSON object, or names none of these, is shown as text.
fn oauth_error(challenge: &[u8]) -> String {
    let fields = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(challenge)
        .unwrap_or_default();
    let wanted: Vec<String> = ["status", "error", "error_description"]
        .iter()
        .filter_map(|key| Some(format!("{key}={}", scalar(fields.get(*key)?)?)))
        .collect();
    if wanted.is_empty() {
        let text = String::from_utf8_lossy(challenge);
        let shown: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        format!("server error: {shown}")
    } else {
        format!("server error: {}", wanted.join(", "))
    }
}

/// A string, number or literal as one line of text (a control character becomes a space);
/// objects and arrays say nothing an error report needs, so they are left out.
fn scalar(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => Some(
            s.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        ),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    use super::*;

    fn start(m: Mechanism, c: &Credentials) -> Client {
        Client::new(m, c, None).unwrap()
    }

    fn token(user: &str, token: &str) -> Credentials {
        Credentials {
            user: user.into(),
            secret: Secret::Token(token.into()),
        }
    }

    #[test]
    fn names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
            assert_eq!(
                Mechanism::from_name(&m.name().to_ascii_lowercase()),
                Some(m)
            );
        }
        assert_eq!(Mechanism::from_name("GSSAPI"), None);
        assert!(Mechanism::names().contains("scram-sha-256"));
    }

    #[test]
    fn preference_orders_and_cram_md5_only_when_forced() {
        assert_eq!(
            Mechanism::preference(SecretKind::Password),
            [
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain,
                Mechanism::Login
            ]
        );
        assert_eq!(
            Mechanism::preference(SecretKind::Token),
            [Mechanism::XOAuth2, Mechanism::OAuthBearer]
        );
        assert_eq!(
            Mechanism::preference(SecretKind::ClientCertificate),
            [Mechanism::External]
        );
        for kind in [
            SecretKind::Password,
            SecretKind::Token,
            SecretKind::ClientCertificate,
        ] {
            assert!(!Mechanism::preference(kind).contains(&Mechanism::CramMd5));
        }
    }

    #[test]
    fn only_plain_and_external_are_pipelined() {
        let pipelined: Vec<Mechanism> = Mechanism::ALL
            .into_iter()
            .filter(|m| m.pipelinable())
            .collect();
        assert_eq!(pipelined, [Mechanism::Plain, Mechanism::External]);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!(
            "{:?} {:?}",
            Credentials::password("alice", "hunter2"),
            token("alice", "ya29.secret")
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("ya29"),
            "{shown}"
        );
        assert!(shown.contains("alice") && shown.contains("<redacted>"));
        let client = start(Mechanism::Plain, &Credentials::password("a", "hunter2"));
        assert!(!format!("{client:?}").contains("hunter2"));
    }

    #[test]
    fn a_mechanism_must_match_the_secret() {
        let e = Client::new(Mechanism::Plain, &token("a", "t"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "needs a password, but an OAuth 2.0 token is configured"
        );
        let e =
            Client::new(Mechanism::XOAuth2, &Credentials::password("a", "p"), None).unwrap_err();
        assert!(e.to_string().contains("needs an OAuth 2.0 token"), "{e}");
        let cert = Credentials {
            user: String::new(),
            secret: Secret::ClientCertificate,
        };
        assert!(Client::new(Mechanism::ScramSha256, &cert, None).is_err());
        assert!(Client::new(Mechanism::External, &cert, None).is_ok());
    }

    /// RFC 4616 §2's example: "\0tim\0tanstaaftanstaaf".
    #[test]
    fn plain_initial_response() {
        let mut c = start(
            Mechanism::Plain,
            &Credentials::password("tim", "tanstaaftanstaaf"),
        );
        assert_eq!(
            B64.encode(c.initial_response().unwrap()),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        c.initial_sent();
        assert!(matches!(c.respond(b""), Err(SaslError::Unexpected(_))));
        assert!(c.finish().is_ok());
    }

    #[test]
    fn an_initial_response_not_sent_answers_the_first_empty_challenge() {
        let mut c = start(Mechanism::Plain, &Credentials::password("a", "b"));
        assert_eq!(c.respond(b"").unwrap(), b"\0a\0b");
        let mut c = start(Mechanism::Plain, &Credentials::password("a", "b"));
        assert!(matches!(c.respond(b"x"), Err(SaslError::Unexpected(_))));
    }

    #[test]
    fn login_answers_user_then_password() {
        let mut c = start(Mechanism::Login, &Credentials::password("alice", "s3cret"));
        assert_eq!(c.initial_response(), None);
        assert_eq!(c.respond(b"Username:").unwrap(), b"alice");
        assert_eq!(c.respond(b"Password:").unwrap(), b"s3cret");
        assert!(matches!(c.respond(b"More:"), Err(SaslError::Unexpected(_))));
    }

    /// The exchange Google documents for XOAUTH2, and its error challenge.
    #[test]
    fn xoauth2_initial_response_and_error_challenge() {
        let mut c = start(
            Mechanism::XOAuth2,
            &token(
                "someuser@example.com",
                "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
            ),
        );
        assert_eq!(
            B64.encode(c.initial_response().unwrap()),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52\
             YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        c.initial_sent();
        let challenge = B64
            .decode(
                "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9t\
                 YWlsLmdvb2dsZS5jb20vIn0K",
            )
            .unwrap();
        assert_eq!(c.respond(&challenge).unwrap(), b"", "an empty line");
        assert_eq!(c.failure_detail(), Some("server error: status=401"));
        assert!(matches!(
            c.respond(&challenge),
            Err(SaslError::Unexpected(_))
        ));
    }

    /// RFC 7628 §4.1 (success) and §4.3 (failure).
    #[test]
    fn oauthbearer_rfc7628_examples() {
        let creds = token(
            "user@example.com",
            "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        );
        let mut c = Client::new(
            Mechanism::OAuthBearer,
            &creds,
            Some(("server.example.com", 143)),
        )
        .unwrap();
        assert_eq!(
            B64.encode(c.initial_response().unwrap()),
            "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1\
             dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
        );
        c.initial_sent();
        let challenge = B64
            .decode(
                "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=",
            )
            .unwrap();
        assert_eq!(c.respond(&challenge).unwrap(), b"\x01");
        assert_eq!(
            c.failure_detail(),
            Some("server error: status=invalid_token")
        );
    }

    #[test]
    fn oauthbearer_without_a_known_server_omits_host_and_port() {
        let c = start(Mechanism::OAuthBearer, &token("a,b", "t"));
        assert_eq!(
            c.initial_response().unwrap(),
            b"n,a=a=2Cb,\x01auth=Bearer t\x01\x01"
        );
    }

    #[test]
    fn control_a_in_a_bearer_field_is_refused() {
        assert!(Client::new(Mechanism::XOAuth2, &token("a\x01b", "t"), None).is_err());
        assert!(Client::new(Mechanism::OAuthBearer, &token("a", "t\x01"), None).is_err());
    }

    /// RFC 2195 §2's example.
    #[test]
    fn cram_md5_rfc2195_example() {
        let mut c = start(
            Mechanism::CramMd5,
            &Credentials::password("tim", "tanstaaftanstaaf"),
        );
        assert_eq!(c.initial_response(), None);
        let challenge = B64
            .decode("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
            .unwrap();
        assert_eq!(challenge, b"<1896.697170952@postoffice.reston.mci.net>");
        let response = c.respond(&challenge).unwrap();
        assert_eq!(response, b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(
            B64.encode(response),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        );
        assert!(matches!(
            c.respond(&challenge),
            Err(SaslError::Unexpected(_))
        ));
    }

    #[test]
    fn external_sends_an_empty_authorization_identity() {
        let c = start(
            Mechanism::External,
            &Credentials {
                user: "ignored".into(),
                secret: Secret::ClientCertificate,
            },
        );
        assert_eq!(c.initial_response(), Some(&b""[..]));
    }

    /// The SCRAM client inside a session-shaped exchange: RFC 7677 §3 with its nonce.
    #[test]
    fn scram_sha256_client_with_the_rfc_nonce() {
        test_nonce::set("rOprNGfwEbeRWgbNEkqO");
        let mut c = start(
            Mechanism::ScramSha256,
            &Credentials::password("user", "pencil"),
        );
        assert_eq!(
            c.initial_response().unwrap(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        c.initial_sent();
        let final_ = c
            .respond(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert!(final_.ends_with(b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
        assert_eq!(
            c.finish(),
            Err(SaslError::NoServerSignature),
            "a 235 before the server's signature is no success"
        );
        assert_eq!(
            c.respond(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap(),
            b""
        );
        assert!(c.finish().is_ok());
    }

    #[test]
    fn random_nonces_differ_and_hold_no_comma() {
        let a = nonce();
        let b = nonce();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(!a.contains(','));
    }

    #[test]
    fn json_error_challenge_names_status_and_error_only() {
        assert_eq!(
            oauth_error(
                br#" {"status" : "401", "n": 3, "nested": {"a": [1, "}"]}, "error":"x\"y"} "#
            ),
            r#"server error: status=401, error=x"y"#
        );
        assert_eq!(
            oauth_error(br#"{"status": 400, "error_description": "bad\nscope"}"#),
            "server error: status=400, error_description=bad scope",
            "numbers are shown as written, an escaped newline as a space"
        );
        assert_eq!(
            oauth_error(br#"{"status": {"code": 401}, "error": "invalid_token"}"#),
            "server error: error=invalid_token",
            "a nested value is left out"
        );
    }

    #[test]
    fn a_challenge_that_is_not_a_json_object_is_shown_as_text() {
        assert_eq!(oauth_error(b"not json"), "server error: not json");
        assert_eq!(oauth_error(b"garbage\x01"), "server error: garbage");
        assert_eq!(
            oauth_error(br#"{"scope": "mail"}"#),
            r#"server error: {"scope": "mail"}"#,
            "an object without status or error is shown whole"
        );
    }
}
