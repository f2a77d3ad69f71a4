//! Just enough X.509 (RFC 5280 §4.1) to show a person which certificate a server presents:
//! subject, issuer, validity and subject alternative names, and its SHA-256 fingerprint. A
//! small DER reader (X.690 §8, §10), not a validator: trust decisions are rustls' and
//! webpki's, never this code's.
//!
//! The certificate comes from the network, so every length is checked against what is
//! left and any malformation is an error, never a panic.

use std::fmt;

/// What `--serverinfo` shows of a certificate, and what a refusal names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject as `CN=mx.example.org, O=Example`.
    pub subject: String,
    pub issuer: String,
    /// RFC 3339 UTC, `2025-01-31T12:00:00Z`.
    pub not_before: String,
    pub not_after: String,
    /// Subject alternative names (RFC 5280 §4.2.1.6): `DNS:mx.example.org`, `IP:192.0.2.1`.
    pub alt_names: Vec<String>,
}

/// Why the bytes are not a certificate this reader understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerError(&'static str);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed certificate: {}", self.0)
    }
}

impl std::error::Error for DerError {}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` and `[3] EXPLICIT Extensions` in TBSCertificate.
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: &str = "2.5.29.17";

/// A cursor over DER TLVs.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(data: &'a [u8]) -> Der<'a> {
        Der { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next tag and its contents.
    fn any(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, after) = self.rest.split_first().ok_or(DerError("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tag"));
        }
        let (&first, mut after) = after.split_first().ok_or(DerError("truncated length"))?;
        let len = match first {
            0..=0x7f => usize::from(first),
            0x80 => return Err(DerError("indefinite length")),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                if after.len() < n {
                    return Err(DerError("truncated length"));
                }
                let (bytes, tail) = after.split_at(n);
                after = tail;
                bytes
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
            }
            _ => return Err(DerError("length too large")),
        };
        if after.len() < len {
            return Err(DerError("content runs past its container"));
        }
        let (content, tail) = after.split_at(len);
        self.rest = tail;
        Ok((tag, content))
    }

    /// The next TLV, which must have this tag.
    fn expect(&mut self, want: u8, what: &'static str) -> Result<&'a [u8], DerError> {
        match self.any()? {
            (tag, content) if tag == want => Ok(content),
            _ => Err(DerError(what)),
        }
    }
}

/// Read the parts of `der` that are shown to a person.
pub fn parse(der: &[u8]) -> Result<CertInfo, DerError> {
    let mut outer = Der::new(der);
    let cert = outer.expect(SEQUENCE, "not a SEQUENCE")?;
    let mut cert = Der::new(cert);
    let mut tbs = Der::new(cert.expect(SEQUENCE, "no tbsCertificate")?);
    if tbs.peek_tag() == Some(VERSION) {
        tbs.any()?;
    }
    tbs.expect(INTEGER, "no serial number")?;
    tbs.expect(SEQUENCE, "no signature algorithm")?;
    let issuer = name(tbs.expect(SEQUENCE, "no issuer")?)?;
    let mut validity = Der::new(tbs.expect(SEQUENCE, "no validity")?);
    let not_before = time(validity.any()?)?;
    let not_after = time(validity.any()?)?;
    let subject = name(tbs.expect(SEQUENCE, "no subject")?)?;
    tbs.expect(SEQUENCE, "no public key")?;
    let mut alt_names = Vec::new();
    while !tbs.is_empty() {
        let (tag, content) = tbs.any()?;
        if tag == EXTENSIONS {
            alt_names = subject_alt_names(content)?;
        }
    }
    Ok(CertInfo {
        subject,
        issuer,
        not_before,
        not_after,
        alt_names,
    })
}

/// RFC 5280 §4.1.2.4 Name: `SEQUENCE OF SET OF { type, value }`, shown in encoded order
/// as `CN=a, O=b` (multi-valued RDNs joined by `+`).
fn name(content: &[u8]) -> Result<String, DerError> {
    let mut rdns = Der::new(content);
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let mut set = Der::new(rdns.expect(SET, "name part is not a SET")?);
        let mut values = Vec::new();
        while !set.is_empty() {
            let mut atv = Der::new(set.expect(SEQUENCE, "attribute is not a SEQUENCE")?);
            let oid = oid(atv.expect(OID, "attribute without a type")?)?;
            let (tag, value) = atv.any()?;
            values.push(format!("{}={}", attribute_name(&oid), string(tag, value)));
        }
        parts.push(values.join("+"));
    }
    Ok(parts.join(", "))
}

fn attribute_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        other => other,
    }
}

/// A directory string as text; control characters escaped so the server cannot write
/// to the terminal.
fn string(tag: u8, bytes: &[u8]) -> String {
    let text: String = match tag {
        // UTF8String, PrintableString, IA5String, VisibleString.
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8_lossy(bytes).into_owned(),
        // TeletexString: in practice Latin-1.
        0x14 => bytes.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UCS-2, big-endian.
        0x1e => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // UniversalString: UCS-4, big-endian.
        0x1c => bytes
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                char::from_u32(u32::from_be_bytes(b)).unwrap_or('\u{fffd}')
            })
            .collect(),
        _ => return format!("#{}", hex(bytes)),
    };
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// X.690 §8.19: dotted decimal.
fn oid(bytes: &[u8]) -> Result<String, DerError> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if value > u64::MAX >> 7 {
            return Err(DerError("OID arc too large"));
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == bytes.len() {
            return Err(DerError("truncated OID"));
        }
    }
    if arcs.is_empty() {
        return Err(DerError("empty OID"));
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

/// RFC 5280 §4.1.2.5: UTCTime `YYMMDDHHMMSSZ` (years 50–99 are 19xx) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`, as RFC 3339.
fn time((tag, bytes): (u8, &[u8])) -> Result<String, DerError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DerError("time is not ASCII"))?;
    let digits = text
        .strip_suffix('Z')
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(DerError("time is not UTC digits"))?;
    let full = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: u32 = digits[..2].parse().map_err(|_| DerError("bad year"))?;
            let century = if yy >= 50 { "19" } else { "20" };
            format!("{century}{digits}")
        }
        (GENERALIZED_TIME, 14) => digits.to_string(),
        _ => return Err(DerError("time has an unknown form")),
    };
    crate::system::time::rfc3339_from_compact(&full).ok_or(DerError("time does not exist"))
}

/// The DNS names and IP addresses of the subjectAltName extension.
fn subject_alt_names(explicit: &[u8]) -> Result<Vec<String>, DerError> {
    let mut wrapper = Der::new(explicit);
    let mut extensions = Der::new(wrapper.expect(SEQUENCE, "extensions are not a SEQUENCE")?);
    while !extensions.is_empty() {
        let mut ext = Der::new(extensions.expect(SEQUENCE, "extension is not a SEQUENCE")?);
        let id = oid(ext.expect(OID, "extension without an id")?)?;
        if ext.peek_tag() == Some(BOOLEAN) {
            ext.any()?;
        }
        let value = ext.expect(OCTET_STRING, "extension value is not an OCTET STRING")?;
        if id != SUBJECT_ALT_NAME {
            continue;
        }
        let mut outer = Der::new(value);
        let mut names = Der::new(outer.expect(SEQUENCE, "GeneralNames is not a SEQUENCE")?);
        let mut out = Vec::new();
        while !names.is_empty() {
            match names.any()? {
                (0x82, dns) => out.push(format!("DNS:{}", string(0x16, dns))),
                (0x87, ip) if ip.len() == 4 => {
                    let a: [u8; 4] = [ip[0], ip[1], ip[2], ip[3]];
                    out.push(format!("IP:{}", std::net::Ipv4Addr::from(a)));
                }
                (0x87, ip) if ip.len() == 16 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(ip);
                    out.push(format!("IP:{}", std::net::Ipv6Addr::from(a)));
                }
                (0x81, mail) => out.push(format!("email:{}", string(0x16, mail))),
                _ => {}
            }
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// The SHA-256 digest of a DER certificate.
pub fn sha256(der: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .to_vec()
}

/// Hex with colons, as `openssl x509 -fingerprint -sha256` prints it.
pub fn hex_colons(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_colons_matches_openssl_style() {
        assert_eq!(hex_colons(&[0x0a, 0xff]), "0A:FF");
    }
    use rcgen::{CertificateParams, DnType, KeyPair, date_time_ymd};

    fn make(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn an_rcgen_certificate_reads_back() {
        let mut params =
            CertificateParams::new(vec!["mx.example.org".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "mx.example.org");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example, Inc.");
        params.not_before = date_time_ymd(2024, 2, 29);
        params.not_after = date_time_ymd(2051, 12, 31);
        let info = parse(&make(params)).unwrap();
        assert_eq!(info.subject, "CN=mx.example.org, O=Example, Inc.");
        assert_eq!(info.issuer, info.subject, "self-signed");
        assert_eq!(info.not_before, "2024-02-29T00:00:00Z");
        // RFC 5280 §4.1.2.5: from 2050 on, GeneralizedTime.
        assert_eq!(info.not_after, "2051-12-31T00:00:00Z");
        assert_eq!(info.alt_names, vec!["DNS:mx.example.org", "IP:127.0.0.1"]);
    }

    #[test]
    fn utc_time_years_before_50_are_this_century() {
        assert_eq!(
            time((UTC_TIME, b"491231235959Z")).unwrap(),
            "2049-12-31T23:59:59Z"
        );
        assert_eq!(
            time((UTC_TIME, b"500101000000Z")).unwrap(),
            "1950-01-01T00:00:00Z"
        );
        assert_eq!(
            time((GENERALIZED_TIME, b"20500101000000Z")).unwrap(),
            "2050-01-01T00:00:00Z"
        );
        for bad in [&b"5001010000Z"[..], b"500101000000", b"50010100000aZ"] {
            assert!(time((UTC_TIME, bad)).is_err(), "{bad:?}");
        }
        assert!(time((0x05, b"500101000000Z")).is_err());
    }

    #[test]
    fn oids_decode_per_x690() {
        // 2.5.4.3 and 1.2.840.113549.1.9.1 (multi-byte arcs).
        assert_eq!(oid(&[0x55, 0x04, 0x03]).unwrap(), "2.5.4.3");
        assert_eq!(
            oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).unwrap(),
            "1.2.840.113549.1.9.1"
        );
        assert!(oid(&[0x2a, 0x86]).is_err());
        assert!(oid(&[]).is_err());
    }

    #[test]
    fn lengths_are_checked() {
        // Long-form length, indefinite length, and content past the end.
        let mut d = Der::new(&[0x04, 0x81, 0x02, 0xaa, 0xbb]);
        assert_eq!(d.any().unwrap(), (0x04, &[0xaa, 0xbb][..]));
        assert!(Der::new(&[0x30, 0x80, 0x00, 0x00]).any().is_err());
        assert!(Der::new(&[0x30, 0x05, 0x00]).any().is_err());
        assert!(Der::new(&[0x30, 0x85, 1, 0, 0, 0, 0]).any().is_err());
        assert!(Der::new(&[0x1f, 0x01, 0x00]).any().is_err());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        let der = make(params);
        assert!(parse(&der).is_ok());
        for n in 0..der.len() {
            assert!(parse(&der[..n]).is_err(), "truncated at {n}");
        }
        let mut flipped = der.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = parse(&flipped);
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn strings_in_names_are_decoded_and_escaped() {
        assert_eq!(string(0x0c, "Zürich".as_bytes()), "Zürich");
        assert_eq!(string(0x14, b"Z\xfcrich"), "Zürich");
        assert_eq!(string(0x1e, &[0, b'h', 0, b'i']), "hi");
        assert_eq!(string(0x13, b"a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(string(0x04, &[0xde, 0xad]), "#dead");
    }
}
