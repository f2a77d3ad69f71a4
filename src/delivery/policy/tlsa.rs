//! The TLSA record (RFC 6698 §2.1) as DNS gives it, and which of its kinds an SMTP client
//! may use (RFC 7672 §3.1).

/// Certificate usage DANE-TA(2): the record names a trust anchor the server's chain must
/// lead to (RFC 7218 §2.1, RFC 7671 §5.2).
pub const DANE_TA: u8 = 2;
/// Certificate usage DANE-EE(3): the record names the server's own certificate or key
/// (RFC 7671 §5.1).
pub const DANE_EE: u8 = 3;
/// Selector Cert(0): the whole certificate, DER (RFC 6698 §2.1.2).
pub const SELECTOR_CERT: u8 = 0;
/// Selector SPKI(1): the certificate's SubjectPublicKeyInfo, DER (RFC 6698 §2.1.2).
pub const SELECTOR_SPKI: u8 = 1;
/// Matching type Full(0): the selected bytes themselves (RFC 6698 §2.1.3).
pub const MATCH_FULL: u8 = 0;
/// Matching type SHA2-256(1) (RFC 6698 §2.1.3).
pub const MATCH_SHA256: u8 = 1;
/// Matching type SHA2-512(2) (RFC 6698 §2.1.3).
pub const MATCH_SHA512: u8 = 2;

/// One TLSA record (RFC 6698 §2.1): certificate usage, selector, matching type and the
/// certificate association data.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    pub fn new(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    /// Whether an SMTP client may use this record. Only DANE-TA(2) and DANE-EE(3) are usable
    /// for SMTP; PKIX-TA(0) and PKIX-EE(1) are not (RFC 7672 §3.1.3), nor are selectors and
    /// matching types this client does not implement (RFC 7671 §4). A digest whose length is
    /// not its algorithm's can match nothing and is unusable too.
    pub fn is_usable(&self) -> bool {
        let usage = matches!(self.usage, DANE_TA | DANE_EE);
        let selector = matches!(self.selector, SELECTOR_CERT | SELECTOR_SPKI);
        let data = match self.matching {
            MATCH_FULL => !self.data.is_empty(),
            MATCH_SHA256 => self.data.len() == 32,
            MATCH_SHA512 => self.data.len() == 64,
            _ => false,
        };
        usage && selector && data
    }

    /// The three parameters as a TLSA record writes them: `3 1 1`.
    pub fn parameters(&self) -> String {
        format!("{} {} {}", self.usage, self.selector, self.matching)
    }
}
