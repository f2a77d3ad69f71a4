//! DANE for SMTP (RFC 7672): which TLSA records an SMTP client may use, what a host's TLSA
//! RRset asks of the client, and a rustls certificate verifier that accepts a server only
//! when one of its usable records matches the chain it presents (RFC 6698 §2.1, RFC 7671 §5).
//!
//! The DNS half (DNSSEC-validated MX, address and TLSA lookups) is
//! [`Resolver::tlsa`](crate::delivery::resolve::Resolver::tlsa); this module starts from the TLSA RRset
//! and the security the DNS gave it.

use std::fmt;
use std::sync::{Arc, Mutex};

use pki_types::{CertificateDer, Der, ServerName, TrustAnchor, UnixTime};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;

pub use super::tlsa::{
    DANE_EE, DANE_TA, MATCH_FULL, MATCH_SHA256, MATCH_SHA512, SELECTOR_CERT, SELECTOR_SPKI, Tlsa,
};
use crate::delivery::resolve::{Secured, Security};
use crate::error::Error;

/// Whether this record's data is the selected part of `cert`, digested as it says
/// (RFC 6698 §2.1.2, §2.1.3).
fn matches(record: &Tlsa, cert: &Presented<'_>) -> bool {
    let selected: &[u8] = match record.selector {
        SELECTOR_CERT => cert.der,
        SELECTOR_SPKI => match &cert.spki {
            Some(spki) => spki,
            None => return false,
        },
        _ => return false,
    };
    match record.matching {
        MATCH_FULL => selected == record.data.as_slice(),
        MATCH_SHA256 => digest(&ring::digest::SHA256, selected) == record.data.as_slice(),
        MATCH_SHA512 => digest(&ring::digest::SHA512, selected) == record.data.as_slice(),
        _ => false,
    }
}

fn digest(algorithm: &'static ring::digest::Algorithm, data: &[u8]) -> Vec<u8> {
    ring::digest::digest(algorithm, data).as_ref().to_vec()
}

/// The presentation form (RFC 6698 §2.2): `3 1 1 0a1b…`.
impl fmt::Display for Tlsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.parameters())?;
        for b in &self.data {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Tlsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tlsa({self})")
    }
}

/// What a host's TLSA RRset asks of the SMTP client (RFC 7672 §2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DanePolicy {
    /// No secure TLSA records (none published, an unsigned zone, or a resolver that does
    /// not validate): TLS as without DANE.
    Absent,
    /// A secure TLSA RRset whose records are all unusable: the client proceeds as though
    /// there were none, with opportunistic TLS (RFC 7672 §2.2, §3.1.3).
    Unusable(Vec<Tlsa>),
    /// Secure, usable records: STARTTLS is mandatory, and the server's certificate must match
    /// one of these (RFC 7672 §2.2, §3). Only the usable records are kept.
    Required(Vec<Tlsa>),
}

impl DanePolicy {
    /// The policy of a TLSA lookup's answer: an insecure RRset, however it looks, is no
    /// policy at all (RFC 7672 §2.2).
    pub fn from_tlsa(rrset: &Secured<Vec<Tlsa>>) -> DanePolicy {
        if rrset.security != Security::Secure || rrset.value.is_empty() {
            return DanePolicy::Absent;
        }
        let usable: Vec<Tlsa> = rrset
            .value
            .iter()
            .filter(|r| r.is_usable())
            .cloned()
            .collect();
        if usable.is_empty() {
            DanePolicy::Unusable(rrset.value.clone())
        } else {
            DanePolicy::Required(usable)
        }
    }
}

/// The names a certificate matched through a DANE-TA(2) record must carry one of (RFC 7672
/// §3.2.2): the TLSA base domain (the MX host's CNAME-expanded name when its records were
/// found there), the MX host name, and the next-hop domain (the recipient's domain) only
/// when the MX RRset that led to the host is secure. Lower-case, without a trailing dot,
/// each once; the first is the name to send in SNI (RFC 7672 §8.1).
pub fn reference_identifiers(
    base: &str,
    mx_host: &str,
    next_hop: &str,
    mx_secure: bool,
) -> Vec<String> {
    let mut names = vec![normalise(base)];
    for (name, wanted) in [(mx_host, true), (next_hop, mx_secure)] {
        let name = normalise(name);
        if wanted && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Which record authenticated the server, for the log: `dane (3 1 1 matched)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaneMatch {
    pub record: Tlsa,
    /// Where in the chain the record matched: 0 for the server's own certificate (DANE-EE),
    /// otherwise the trust anchor's distance from it (DANE-TA).
    pub depth: usize,
}

impl fmt::Display for DaneMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dane ({} matched)", self.record.parameters())
    }
}

/// A certificate in the presented chain, with the parts a selector picks.
struct Presented<'a> {
    der: &'a [u8],
    /// `None` when webpki cannot parse the certificate; a selector-1 record cannot match it.
    spki: Option<Vec<u8>>,
}

impl<'a> Presented<'a> {
    fn of(cert: &'a CertificateDer<'a>) -> Presented<'a> {
        let spki = webpki::EndEntityCert::try_from(cert)
            .ok()
            .map(|c| c.subject_public_key_info().as_ref().to_vec());
        Presented {
            der: cert.as_ref(),
            spki,
        }
    }
}

/// A rustls verifier that accepts a server's chain iff a usable TLSA record matches it
/// (RFC 7672 §3): a DANE-EE(3) record matching the server's certificate, with no name or date
/// check (RFC 7671 §5.1); or a DANE-TA(2) record matching a certificate of the chain (or, as
/// a full public key, `2 1 0`, the key that issued one), with a valid path from the server's
/// certificate to it and one of the reference identifiers in it (RFC 7671 §5.2, RFC 7672
/// §3.2). Handshake signatures are verified as always.
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    names: Vec<String>,
    provider: Arc<CryptoProvider>,
    matched: Arc<Mutex<Option<DaneMatch>>>,
}

impl fmt::Debug for DaneVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaneVerifier")
            .field("records", &self.records)
            .field("names", &self.names)
            .finish()
    }
}

impl DaneVerifier {
    /// A verifier for these records (unusable ones are dropped) and the reference
    /// identifiers of [`reference_identifiers`]. Without a usable record there is nothing to
    /// authenticate with: that is [`DanePolicy::Unusable`], for the caller to see first.
    pub fn new(records: &[Tlsa], names: &[String]) -> Result<DaneVerifier, Error> {
        let records: Vec<Tlsa> = records.iter().filter(|r| r.is_usable()).cloned().collect();
        if records.is_empty() {
            return Err(Error::Internal(
                "DANE verifier built without a usable TLSA record".into(),
            ));
        }
        Ok(DaneVerifier {
            records,
            names: names.iter().map(|n| normalise(n)).collect(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            matched: Arc::new(Mutex::new(None)),
        })
    }

    /// The record that authenticated the last handshake, if it succeeded.
    pub fn matched(&self) -> Option<DaneMatch> {
        lock(&self.matched).clone()
    }

    /// The DANE decision for a chain: the record that matched, or why none did.
    fn authenticate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<DaneMatch, String> {
        let leaf = Presented::of(end_entity);
        if let Some(record) = self
            .records
            .iter()
            .find(|r| r.usage == DANE_EE && matches(r, &leaf))
        {
            return Ok(DaneMatch {
                record: record.clone(),
                depth: 0,
            });
        }
        let mut why = Vec::new();
        for record in self.records.iter().filter(|r| r.usage == DANE_TA) {
            match self.chain_to(record, end_entity, intermediates, now) {
                Ok(Some(depth)) => {
                    return Ok(DaneMatch {
                        record: record.clone(),
                        depth,
                    });
                }
                Ok(None) => {}
                Err(reason) => why.push(reason),
            }
        }
        if why.is_empty() {
            let tried: Vec<String> = self.records.iter().map(Tlsa::parameters).collect();
            Err(format!(
                "certificate matches none of the TLSA records ({}) (DANE, RFC 7672 §3)",
                tried.join(", ")
            ))
        } else {
            Err(why.join("; "))
        }
    }

    /// A DANE-TA(2) record: `Ok(None)` when it names no certificate or key of this chain,
    /// `Ok(Some(depth))` when the server's certificate has a valid path to it and a
    /// reference identifier, `Err` when it matched but the path or the name does not hold.
    fn chain_to(
        &self,
        record: &Tlsa,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Option<usize>, String> {
        let ee = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| format!("server certificate: {}", describe_webpki(&e)))?;
        // RFC 7671 §5.2: the anchor is a certificate the server sends, above its own...
        let mut anchors: Vec<TrustAnchor<'_>> = intermediates
            .iter()
            .filter(|c| matches(record, &Presented::of(c)))
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
            .collect();
        // ...or, published as a whole key (`2 1 0`), the key that issued one of them; its
        // name is whatever the certificate it issued calls its issuer.
        if record.selector == SELECTOR_SPKI
            && record.matching == MATCH_FULL
            && let Some((SEQUENCE, spki, [])) = der_tlv(&record.data)
        {
            let issuers = std::iter::once(end_entity)
                .chain(intermediates)
                .filter_map(|c| webpki::EndEntityCert::try_from(c).ok())
                .map(|c| c.issuer().to_vec())
                .collect::<Vec<_>>();
            for issuer in issuers {
                anchors.push(TrustAnchor {
                    subject: Der::from(issuer),
                    subject_public_key_info: Der::from(spki.to_vec()),
                    name_constraints: None,
                });
            }
        }
        if anchors.is_empty() {
            return Ok(None);
        }
        let params = record.parameters();
        let path = ee
            .verify_for_usage(
                self.provider.signature_verification_algorithms.all,
                &anchors,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .map_err(|e| {
                format!(
                    "no valid chain to the DANE-TA record {params}: {}",
                    describe_webpki(&e)
                )
            })?;
        let depth = path.intermediate_certificates().count() + 1;
        if !self.valid_for_a_name(&ee) {
            return Err(format!(
                "certificate chains to the DANE-TA record {params} but is not valid for {} \
                 (RFC 7672 §3.2.2)",
                self.names.join(" or ")
            ));
        }
        Ok(Some(depth))
    }

    /// RFC 7672 §3.2.3: the DNS-IDs of the subject alternative names when there are any
    /// (wildcards as the whole left-most label only, RFC 6125 §6.4.3, as webpki matches
    /// them), otherwise the subject's common names.
    fn valid_for_a_name(&self, ee: &webpki::EndEntityCert<'_>) -> bool {
        if ee.valid_dns_names().next().is_some() {
            return self.names.iter().any(|name| {
                ServerName::try_from(name.as_str())
                    .is_ok_and(|sn| ee.verify_is_valid_for_subject_name(&sn).is_ok())
            });
        }
        common_names(ee.subject())
            .iter()
            .any(|cn| self.names.iter().any(|name| cn_matches(cn, name)))
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name checked is the reference identifiers', not the name dialled.
        let outcome = self.authenticate(end_entity, intermediates, now);
        let mut matched = lock(&self.matched);
        match outcome {
            Ok(m) => {
                *matched = Some(m);
                Ok(ServerCertVerified::assertion())
            }
            Err(reason) => {
                *matched = None;
                Err(rustls::Error::General(reason))
            }
        }
    }

    crate::transport::tls::signatures_by_provider!(provider);
}

/// A client configuration that authenticates the server by DANE, and the verifier's record
/// of which TLSA record matched.
pub struct DaneTls {
    pub config: Arc<ClientConfig>,
    verifier: Arc<DaneVerifier>,
}

impl DaneTls {
    /// The record that authenticated the last handshake made with [`DaneTls::config`].
    pub fn matched(&self) -> Option<DaneMatch> {
        self.verifier.matched()
    }
}

/// The rustls client configuration for a host whose TLSA RRset is
/// [`DanePolicy::Required`]: `records` are its records, `names` its
/// [`reference_identifiers`]. TLS 1.3 and 1.2 as elsewhere; no session resumption, so every
/// connection is authenticated against the records and [`DaneTls::matched`] speaks of it.
pub fn client_config(records: &[Tlsa], names: &[String]) -> Result<DaneTls, Error> {
    let verifier = Arc::new(DaneVerifier::new(records, names)?);
    let mut config = ClientConfig::builder_with_provider(verifier.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Internal(format!("TLS config: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(DaneTls {
        config: Arc::new(config),
        verifier,
    })
}

/// A webpki verdict in words.
fn describe_webpki(e: &webpki::Error) -> String {
    match e {
        webpki::Error::CertExpired { .. } => "a certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => "a certificate is not valid yet".into(),
        webpki::Error::UnknownIssuer => "the chain does not lead to it".into(),
        webpki::Error::InvalidSignatureForPublicKey => "a signature does not verify".into(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate is not for TLS servers (extended key usage)".into()
        }
        other => format!("{other:?}"),
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// The first DER element of `input` as (tag, contents, rest) (X.690 §8.1.2-3, low tag numbers
/// and definite lengths, as DER has them), or `None` if it is not well formed.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// The common names in a certificate's subject (the contents of its Name, RFC 5280 §4.1.2.6),
/// in UTF8String, PrintableString or IA5String; anything malformed ends the list.
fn common_names(subject: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut rdns = subject;
    while let Some((SET, set, rest)) = der_tlv(rdns) {
        rdns = rest;
        let mut attributes = set;
        while let Some((SEQUENCE, attribute, rest)) = der_tlv(attributes) {
            attributes = rest;
            let Some((OID, oid, value)) = der_tlv(attribute) else {
                return names;
            };
            if oid != COMMON_NAME {
                continue;
            }
            if let Some((0x0c | 0x13 | 0x16, text, _)) = der_tlv(value)
                && let Ok(text) = std::str::from_utf8(text)
            {
                names.push(text.to_string());
            }
        }
    }
    names
}

/// A common name against a reference identifier (RFC 6125 §6.4.3 as RFC 7672 §3.2.3 narrows
/// it): equal ignoring case, or a `*` that is the whole left-most label standing for exactly
/// one label, never directly under a top-level domain.
fn cn_matches(presented: &str, reference: &str) -> bool {
    let presented = normalise(presented);
    let reference = normalise(reference);
    match presented.strip_prefix("*.") {
        Some(parent) => {
            parent.contains('.')
                && !parent.contains('*')
                && reference
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent)
        }
        None => !presented.contains('*') && !presented.is_empty() && presented == reference,
    }
}

/// A poisoned lock still holds a whole value.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secure(records: Vec<Tlsa>) -> Secured<Vec<Tlsa>> {
        Secured {
            value: records,
            security: Security::Secure,
        }
    }

    #[test]
    fn only_dane_ta_and_dane_ee_are_usable_for_smtp() {
        let digest = vec![0xab; 32];
        assert!(Tlsa::new(3, 1, 1, digest.clone()).is_usable());
        assert!(Tlsa::new(2, 0, 1, digest.clone()).is_usable());
        assert!(!Tlsa::new(0, 0, 1, digest.clone()).is_usable(), "PKIX-TA");
        assert!(!Tlsa::new(1, 1, 1, digest.clone()).is_usable(), "PKIX-EE");
        assert!(
            !Tlsa::new(4, 1, 1, digest.clone()).is_usable(),
            "unassigned usage"
        );
        assert!(
            !Tlsa::new(3, 2, 1, digest.clone()).is_usable(),
            "unknown selector"
        );
        assert!(
            !Tlsa::new(3, 1, 3, digest).is_usable(),
            "unknown matching type"
        );
    }

    #[test]
    fn digests_of_the_wrong_length_are_unusable() {
        assert!(!Tlsa::new(3, 1, 1, vec![0; 31]).is_usable());
        assert!(!Tlsa::new(3, 1, 2, vec![0; 32]).is_usable());
        assert!(Tlsa::new(3, 1, 2, vec![0; 64]).is_usable());
        assert!(!Tlsa::new(3, 0, 0, Vec::new()).is_usable());
        assert!(Tlsa::new(3, 0, 0, vec![0x30, 0]).is_usable());
    }

    #[test]
    fn presentation_form_is_parameters_and_hex() {
        let r = Tlsa::new(3, 1, 1, vec![0x0a, 0xff]);
        assert_eq!(r.to_string(), "3 1 1 0aff");
        assert_eq!(r.parameters(), "3 1 1");
        let m = DaneMatch {
            record: r,
            depth: 0,
        };
        assert_eq!(m.to_string(), "dane (3 1 1 matched)");
    }

    #[test]
    fn policy_follows_security_and_usability() {
        let usable = Tlsa::new(3, 1, 1, vec![1; 32]);
        let pkix = Tlsa::new(1, 1, 1, vec![1; 32]);
        assert_eq!(
            DanePolicy::from_tlsa(&secure(vec![usable.clone(), pkix.clone()])),
            DanePolicy::Required(vec![usable.clone()])
        );
        assert_eq!(
            DanePolicy::from_tlsa(&secure(vec![pkix.clone()])),
            DanePolicy::Unusable(vec![pkix])
        );
        assert_eq!(
            DanePolicy::from_tlsa(&secure(Vec::new())),
            DanePolicy::Absent
        );
        let insecure = Secured {
            value: vec![usable],
            security: Security::Insecure,
        };
        assert_eq!(DanePolicy::from_tlsa(&insecure), DanePolicy::Absent);
    }

    #[test]
    fn next_hop_is_a_reference_identifier_only_behind_a_secure_mx() {
        let mx = "MX.Example.ORG.";
        assert_eq!(
            reference_identifiers(mx, mx, "example.org", true),
            ["mx.example.org", "example.org"]
        );
        assert_eq!(
            reference_identifiers(mx, mx, "example.org", false),
            ["mx.example.org"]
        );
        assert_eq!(
            reference_identifiers("example.org", "example.org", "example.org", true),
            ["example.org"]
        );
    }

    #[test]
    fn an_expanded_base_domain_comes_first_and_the_mx_name_stays() {
        assert_eq!(
            reference_identifiers("host.provider.net", "mx.example.org", "example.org", true),
            ["host.provider.net", "mx.example.org", "example.org"]
        );
    }

    #[test]
    fn verifier_needs_a_usable_record() {
        let names = ["mx.example.org".to_string()];
        assert!(DaneVerifier::new(&[Tlsa::new(1, 1, 1, vec![0; 32])], &names).is_err());
        assert!(DaneVerifier::new(&[Tlsa::new(3, 1, 1, vec![0; 32])], &names).is_ok());
    }

    #[test]
    fn der_lengths_short_and_long() {
        assert_eq!(
            der_tlv(&[0x30, 0x01, 0xaa, 0xbb]),
            Some((0x30, &[0xaa][..], &[0xbb][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7; 0x80]);
        let (tag, contents, rest) = der_tlv(&long).unwrap();
        assert_eq!((tag, contents.len(), rest.len()), (0x04, 0x80, 0));
        assert_eq!(der_tlv(&[0x30, 0x02, 0x00]), None, "truncated");
        assert_eq!(
            der_tlv(&[0x30, 0x80, 0x00, 0x00]),
            None,
            "indefinite length"
        );
        assert_eq!(der_tlv(&[0x1f, 0x01, 0x00]), None, "high tag number");
        assert_eq!(der_tlv(&[0x30]), None);
    }

    #[test]
    fn common_names_are_read_from_the_subject() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mx.example.org");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().clone();
        let ee = webpki::EndEntityCert::try_from(&der).unwrap();
        assert_eq!(common_names(ee.subject()), ["mx.example.org"]);
        assert!(common_names(&[0x31, 0x05, 0x30]).is_empty(), "malformed");
    }

    #[test]
    fn wildcards_stand_for_one_whole_left_most_label() {
        assert!(cn_matches("mx.example.org", "MX.example.org."));
        assert!(cn_matches("*.example.org", "mx.example.org"));
        assert!(!cn_matches("*.example.org", "a.mx.example.org"));
        assert!(!cn_matches("*.example.org", "example.org"));
        assert!(
            !cn_matches("*.org", "example.org"),
            "not under a top-level domain"
        );
        assert!(
            !cn_matches("m*.example.org", "mx.example.org"),
            "partial label"
        );
        assert!(!cn_matches("mx.*.org", "mx.example.org"));
        assert!(!cn_matches("", ""));
    }
}
