//! A refused server certificate in words a person can act on: what is wrong with it (the
//! date it expired, the names it is issued for, the issuer nobody trusts), its SHA-256
//! fingerprint, and the line that would trust it anyway.
//!
//! Pure: the caller hands over rustls' verdict and the certificate's DER; nothing here
//! decides trust.

use rustls::CertificateError;

use super::cert::{self, hex_colons, sha256};

/// How advice is written: in the syntax of where the relay's settings came from, so the
/// line can be pasted there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// smtpsend's TOML config.
    Toml,
    /// An msmtprc.
    Msmtprc,
    /// The relay was named on the command line.
    Flag,
}

impl Syntax {
    /// The line that asks for implicit TLS (`implicit`) or STARTTLS.
    pub fn tls_line(self, implicit: bool) -> String {
        match (self, implicit) {
            (Syntax::Toml, true) => "tls = \"implicit\"".into(),
            (Syntax::Toml, false) => "tls = \"starttls\"".into(),
            (Syntax::Msmtprc, true) => "tls_starttls off".into(),
            (Syntax::Msmtprc, false) => "tls_starttls on".into(),
            (Syntax::Flag, true) => "--tls implicit".into(),
            (Syntax::Flag, false) => "--tls starttls".into(),
        }
    }

    /// The line that pins the certificate with this fingerprint (colon hex).
    pub fn pin_line(self, fingerprint: &str) -> String {
        match self {
            Syntax::Toml => format!("tls_fingerprint = \"{fingerprint}\""),
            Syntax::Msmtprc => format!("tls_fingerprint {fingerprint}"),
            Syntax::Flag => format!("--tls-fingerprint {fingerprint}"),
        }
    }
}

/// Why the certificate `der`, presented by `host`, was refused. `pinned` says a
/// fingerprint was configured (then [`CertificateError::ApplicationVerificationFailure`]
/// is a pin that does not match); `hint` how to write the line that trusts it, `None`
/// where no pin can be set (direct delivery).
pub fn describe(
    error: &CertificateError,
    der: &[u8],
    host: &str,
    pinned: bool,
    hint: Option<Syntax>,
) -> String {
    let info = cert::parse(der).ok();
    let fingerprint = hex_colons(&sha256(der));
    let what = what_is_wrong(error, info.as_ref(), host, pinned, &fingerprint);
    let trust = match hint {
        Some(hint) if pinned => format!(
            "; if the server's certificate was renewed, pin the new one: {}",
            hint.pin_line(&fingerprint)
        ),
        Some(hint) => format!(
            "; to trust this certificate by its SHA-256 fingerprint: {}",
            hint.pin_line(&fingerprint)
        ),
        None if pinned => String::new(),
        None => format!("; its SHA-256 fingerprint is {fingerprint}"),
    };
    format!("{what}{trust}")
}

fn what_is_wrong(
    error: &CertificateError,
    info: Option<&cert::CertInfo>,
    host: &str,
    pinned: bool,
    fingerprint: &str,
) -> String {
    match error {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => match info {
            Some(info) => format!("certificate expired on {}", info.not_after),
            None => "certificate has expired".into(),
        },
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => match info {
            Some(info) => format!("certificate is not valid before {}", info.not_before),
            None => "certificate is not valid yet".into(),
        },
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            match info.map(names) {
                Some(names) if !names.is_empty() => {
                    format!("certificate is issued for {}, not {host}", names.join(", "))
                }
                Some(_) => format!(
                    "certificate names no host (subject {}, no subjectAltName), not {host}",
                    info.map_or("", |i| i.subject.as_str())
                ),
                None => format!("certificate is not valid for {host}"),
            }
        }
        CertificateError::UnknownIssuer | CertificateError::Other(_) => match info {
            Some(info) if info.issuer == info.subject => format!(
                "certificate issuer is not trusted: it is self-signed by {}",
                info.subject
            ),
            Some(info) => format!("certificate issuer {} is not trusted", info.issuer),
            None => "certificate is not signed by a trusted authority".into(),
        },
        CertificateError::ApplicationVerificationFailure if pinned => {
            format!("certificate {fingerprint} is not the pinned one")
        }
        CertificateError::Revoked => "certificate is revoked".into(),
        CertificateError::BadSignature => "certificate signature does not verify against the \
                                           trusted certificates (was the server's \
                                           certificate renewed?)"
            .into(),
        CertificateError::BadEncoding => "certificate is malformed".into(),
        other => format!("certificate rejected: {other:?}"),
    }
}

/// The subjectAltNames as a person writes them: `mx.example.org`, `192.0.2.1`.
fn names(info: &cert::CertInfo) -> Vec<String> {
    info.alt_names
        .iter()
        .filter_map(|n| n.strip_prefix("DNS:").or_else(|| n.strip_prefix("IP:")))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, date_time_ymd};

    fn self_signed(names: &[&str], expired: bool) -> Vec<u8> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("x"));
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn an_expired_certificate_names_the_day_and_the_pin_that_trusts_it() {
        let der = self_signed(&["localhost"], true);
        let fp = hex_colons(&sha256(&der));
        let text = describe(
            &CertificateError::Expired,
            &der,
            "127.0.0.1",
            false,
            Some(Syntax::Toml),
        );
        assert_eq!(
            text,
            format!(
                "certificate expired on 2021-01-01T00:00:00Z; to trust this certificate by \
                 its SHA-256 fingerprint: tls_fingerprint = \"{fp}\""
            )
        );
    }

    #[test]
    fn a_certificate_for_other_names_lists_them() {
        let der = self_signed(&["mx.example.org", "192.0.2.1"], false);
        let text = describe(
            &CertificateError::NotValidForName,
            &der,
            "127.0.0.1",
            false,
            Some(Syntax::Msmtprc),
        );
        assert!(
            text.starts_with(
                "certificate is issued for mx.example.org, 192.0.2.1, not 127.0.0.1; "
            ),
            "{text}"
        );
        assert!(text.ends_with(&format!("tls_fingerprint {}", hex_colons(&sha256(&der)))));
    }

    #[test]
    fn a_self_signed_certificate_says_so() {
        let der = self_signed(&["localhost"], false);
        let text = describe(
            &CertificateError::UnknownIssuer,
            &der,
            "localhost",
            false,
            Some(Syntax::Flag),
        );
        assert!(
            text.starts_with(
                "certificate issuer is not trusted: it is self-signed by CN=localhost; "
            ),
            "{text}"
        );
        assert!(text.ends_with(&format!("--tls-fingerprint {}", hex_colons(&sha256(&der)))));
    }

    #[test]
    fn without_a_place_to_pin_the_fingerprint_is_still_shown() {
        let der = self_signed(&["localhost"], false);
        let text = describe(&CertificateError::UnknownIssuer, &der, "h", false, None);
        assert!(text.ends_with(&format!(
            "; its SHA-256 fingerprint is {}",
            hex_colons(&sha256(&der))
        )));
    }

    #[test]
    fn a_pin_mismatch_offers_the_new_pin() {
        let der = self_signed(&["localhost"], false);
        let fp = hex_colons(&sha256(&der));
        let text = describe(
            &CertificateError::ApplicationVerificationFailure,
            &der,
            "h",
            true,
            Some(Syntax::Toml),
        );
        assert_eq!(
            text,
            format!(
                "certificate {fp} is not the pinned one; if the server's certificate was \
                 renewed, pin the new one: tls_fingerprint = \"{fp}\""
            )
        );
    }

    #[test]
    fn an_unreadable_certificate_still_gets_the_verdict_and_the_fingerprint() {
        let text = describe(
            &CertificateError::Expired,
            b"not DER",
            "h",
            false,
            Some(Syntax::Toml),
        );
        assert!(
            text.starts_with("certificate has expired; to trust"),
            "{text}"
        );
    }
}
