//! SCRAM-SHA-256 (RFC 7677) and SCRAM-SHA-1 (RFC 5802), client side, without channel
//! binding (gs2 header `n,,`), over ring's PBKDF2 and HMAC.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};

use super::SaslError;
use super::saslprep::saslprep;

/// The fewest PBKDF2 iterations accepted: RFC 7677 §4 asks for at least 4096 for
/// SCRAM-SHA-256, and RFC 5802 §5's example uses 4096 for SCRAM-SHA-1. A server asking
/// for fewer would make a stolen exchange cheaper to crack: refused as a downgrade.
pub const ITERATION_FLOOR: u32 = 4096;

/// The most iterations computed: a hostile server must not keep the client busy for
/// minutes. Ten million is seconds of work, far above what servers configure.
pub const ITERATION_CEILING: u32 = 10_000_000;

/// The hash a SCRAM variant is built on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Hash::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => hmac::HMAC_SHA256,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }
}

#[derive(Debug)]
enum State {
    /// client-first sent; waiting for server-first.
    First,
    /// client-final sent; waiting for server-final, whose signature must be this key's
    /// HMAC of `auth_message`.
    Final {
        server_key: Vec<u8>,
        auth_message: Vec<u8>,
    },
    /// The server proved it knows the password.
    Verified,
    Failed,
}

/// One SCRAM exchange.
pub struct Scram {
    hash: Hash,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    state: State,
}

impl std::fmt::Debug for Scram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scram")
            .field("hash", &self.hash)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// RFC 5802 §5.1 saslname: `,` and `=` escaped as `=2C` and `=3D`.
pub fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

impl Scram {
    /// Prepares user and password (RFC 5802 §5.1: SASLprep) and the client-first message.
    pub fn new(hash: Hash, user: &str, password: &str, nonce: String) -> Result<Scram, SaslError> {
        let user = saslprep(user)
            .map_err(|e| SaslError::BadCredentials(format!("the user name cannot be used: {e}")))?;
        // The message must not say which character: it would leak part of the password.
        let password = saslprep(password).map_err(|_| {
            SaslError::BadCredentials(
                "SASLprep (RFC 4013) refuses the password: it holds a control, private-use, \
                 non-character or unassigned code point, or mixes text directions"
                    .into(),
            )
        })?;
        if password.is_empty() {
            return Err(SaslError::BadCredentials("the password is empty".into()));
        }
        let client_first_bare = format!("n={},r={nonce}", saslname(&user));
        Ok(Scram {
            hash,
            password,
            client_nonce: nonce,
            client_first_bare,
            state: State::First,
        })
    }

    /// client-first-message: gs2 header `n,,` (no channel binding, no authzid).
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The next response to a server message.
    pub fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        let result = match std::mem::replace(&mut self.state, State::Failed) {
            State::First => self.server_first(challenge),
            State::Final {
                server_key,
                auth_message,
            } => self
                .server_final(challenge, &server_key, &auth_message)
                .map(|()| Vec::new()),
            State::Verified | State::Failed => Err(SaslError::Unexpected(
                "a challenge after the SCRAM exchange ended".into(),
            )),
        };
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Whether the server's signature was verified (RFC 5802 §3: mutual authentication).
    pub fn verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }

    /// RFC 5802 §7 server-first-message: `[m=...,]r=nonce,s=salt,i=count[,ext]`.
    fn server_first(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        let text = std::str::from_utf8(challenge)
            .map_err(|_| SaslError::Malformed("SCRAM server-first message is not UTF-8".into()))?;
        let mut attrs = text.split(',');
        let mut next = |key: &str| -> Result<&str, SaslError> {
            match attrs.next().and_then(|a| a.strip_prefix(key)) {
                Some(v) => Ok(v),
                None => Err(SaslError::Malformed(format!(
                    "SCRAM server-first message {text:?} lacks {key}"
                ))),
            }
        };
        if text.starts_with("m=") {
            // RFC 5802 §5.1: a mandatory extension the client does not know ends it.
            return Err(SaslError::Malformed(
                "SCRAM server requires an extension (m=) this client does not know".into(),
            ));
        }
        if let Some(error) = text.strip_prefix("e=") {
            return Err(SaslError::ServerError(error.to_string()));
        }
        let nonce = next("r=")?;
        let salt = next("s=")?;
        let iterations = next("i=")?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            // RFC 5802 §5.1: the server appends its own nonce to ours.
            return Err(SaslError::NonceMismatch);
        }
        if nonce.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(SaslError::Malformed("SCRAM nonce is not printable".into()));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| SaslError::Malformed("SCRAM salt is not base64".into()))?;
        if salt.is_empty() {
            return Err(SaslError::Malformed("SCRAM salt is empty".into()));
        }
        let iterations: u32 = iterations.parse().map_err(|_| {
            SaslError::Malformed(format!(
                "SCRAM iteration count {iterations:?} is not a number"
            ))
        })?;
        if iterations < ITERATION_FLOOR {
            return Err(SaslError::TooFewIterations(iterations));
        }
        if iterations > ITERATION_CEILING {
            return Err(SaslError::TooManyIterations(iterations));
        }
        let rounds = NonZeroU32::new(iterations).ok_or(SaslError::TooFewIterations(0))?;

        let h = self.hash;
        let mut salted = vec![0u8; h.len()];
        pbkdf2::derive(
            h.pbkdf2(),
            rounds,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let salted_key = hmac::Key::new(h.hmac(), &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let server_key = hmac::sign(&salted_key, b"Server Key");
        let stored_key = digest::digest(h.digest(), client_key.as_ref());

        // c=biws is base64("n,,"): the gs2 header, no channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_signature = hmac::sign(
            &hmac::Key::new(h.hmac(), stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(client_signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        self.state = State::Final {
            server_key: server_key.as_ref().to_vec(),
            auth_message: auth_message.into_bytes(),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// RFC 5802 §7 server-final-message: `e=error` or `v=signature`.
    fn server_final(
        &mut self,
        challenge: &[u8],
        server_key: &[u8],
        auth_message: &[u8],
    ) -> Result<(), SaslError> {
        let text = std::str::from_utf8(challenge)
            .map_err(|_| SaslError::Malformed("SCRAM server-final message is not UTF-8".into()))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(SaslError::ServerError(
                error.split(',').next().unwrap_or_default().to_string(),
            ));
        }
        let Some(signature) = text
            .strip_prefix("v=")
            .map(|v| v.split(',').next().unwrap_or_default())
        else {
            return Err(SaslError::Malformed(format!(
                "SCRAM server-final message {text:?} has no verifier"
            )));
        };
        let signature = B64
            .decode(signature)
            .map_err(|_| SaslError::ServerSignature)?;
        // hmac::verify compares in constant time.
        hmac::verify(
            &hmac::Key::new(self.hash.hmac(), server_key),
            auth_message,
            &signature,
        )
        .map_err(|_| SaslError::ServerSignature)?;
        self.state = State::Verified;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    /// RFC 5802 §5, user "user", password "pencil".
    #[test]
    fn rfc5802_scram_sha1_example() {
        let mut s = Scram::new(
            Hash::Sha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL".into(),
        )
        .unwrap();
        assert_eq!(
            text(s.client_first()),
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
        );
        let final_ = s
            .step(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            text(final_),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(!s.verified());
        assert_eq!(s.step(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap(), b"");
        assert!(s.verified());
    }

    /// RFC 7677 §3, user "user", password "pencil".
    #[test]
    fn rfc7677_scram_sha256_example() {
        let mut s = Scram::new(
            Hash::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        )
        .unwrap();
        assert_eq!(text(s.client_first()), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let final_ = s
            .step(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            text(final_),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(s.verified());
    }

    fn sha256_after_first() -> Scram {
        let mut s = Scram::new(
            Hash::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        )
        .unwrap();
        s.step(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        )
        .unwrap();
        s
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut s = sha256_after_first();
        // The RFC's signature with its last byte changed.
        let e = s
            .step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=")
            .unwrap_err();
        assert_eq!(e, SaslError::ServerSignature);
        assert!(
            e.to_string()
                .contains("could not prove it knows the password")
        );
        assert!(!s.verified());
        // Not base64 at all is no proof either.
        let mut s = sha256_after_first();
        assert_eq!(s.step(b"v=!!!").unwrap_err(), SaslError::ServerSignature);
    }

    #[test]
    fn a_server_error_is_reported() {
        let mut s = sha256_after_first();
        assert_eq!(
            s.step(b"e=invalid-proof").unwrap_err(),
            SaslError::ServerError("invalid-proof".into())
        );
    }

    #[test]
    fn iteration_counts_below_the_floor_are_a_downgrade() {
        for (hash, count) in [(Hash::Sha256, 4095), (Hash::Sha1, 1), (Hash::Sha256, 0)] {
            let mut s = Scram::new(hash, "user", "pencil", "abc".into()).unwrap();
            let challenge = format!("r=abcdef,s=QSXCR+Q6sek8bf92,i={count}");
            assert_eq!(
                s.step(challenge.as_bytes()).unwrap_err(),
                SaslError::TooFewIterations(count)
            );
        }
        let mut s = Scram::new(Hash::Sha256, "user", "pencil", "abc".into()).unwrap();
        assert_eq!(
            s.step(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=4000000000")
                .unwrap_err(),
            SaslError::TooManyIterations(4_000_000_000)
        );
    }

    #[test]
    fn the_server_nonce_must_extend_ours() {
        for nonce in ["xyz123", "abc", "ab"] {
            let mut s = Scram::new(Hash::Sha256, "user", "pencil", "abc".into()).unwrap();
            let challenge = format!("r={nonce},s=QSXCR+Q6sek8bf92,i=4096");
            assert_eq!(
                s.step(challenge.as_bytes()).unwrap_err(),
                SaslError::NonceMismatch,
                "{nonce}"
            );
        }
    }

    #[test]
    fn malformed_server_first_messages() {
        for bad in [
            &b"s=QSXCR+Q6sek8bf92,r=abcdef,i=4096"[..],
            b"r=abcdef,s=QSXCR+Q6sek8bf92",
            b"r=abcdef,s=***,i=4096",
            b"r=abcdef,s=,i=4096",
            b"r=abcdef,s=QSXCR+Q6sek8bf92,i=many",
            b"m=ext,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096",
            b"\xff",
        ] {
            let mut s = Scram::new(Hash::Sha256, "user", "pencil", "abc".into()).unwrap();
            assert!(
                matches!(s.step(bad), Err(SaslError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn user_names_are_escaped() {
        assert_eq!(saslname("a,b=c"), "a=2Cb=3Dc");
        let s = Scram::new(Hash::Sha256, "a,b=c", "pw", "n".into()).unwrap();
        assert_eq!(text(s.client_first()), "n,,n=a=2Cb=3Dc,r=n");
    }

    #[test]
    fn passwords_are_prepared() {
        let Err(SaslError::BadCredentials(e)) =
            Scram::new(Hash::Sha256, "user", "pen\tcil", "n".into())
        else {
            panic!("a tab is prohibited");
        };
        assert!(
            !e.contains("U+0009"),
            "names no character of the password: {e}"
        );
        assert!(matches!(
            Scram::new(Hash::Sha256, "user", "\u{00AD}", "n".into()),
            Err(SaslError::BadCredentials(_))
        ));
        // A soft hyphen is mapped to nothing: the same proof as without it.
        let mut with = Scram::new(
            Hash::Sha256,
            "user",
            "pen\u{00AD}cil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        )
        .unwrap();
        let mut without = sha256_after_first();
        let challenge = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        with.step(challenge).unwrap();
        let v = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        with.step(v).unwrap();
        without.step(v).unwrap();
        assert!(with.verified() && without.verified());
    }
}
