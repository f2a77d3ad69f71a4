//! TLS client configuration: the built-in web PKI roots (webpki-roots), the system's CA
//! store and an optional trust file; or the system's CA store alone ([`SYSTEM_TRUST`]);
//! hostname checks, SHA-256 fingerprint pinning, or (opportunistic mode) encryption
//! without verification.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, RootCertStore};

use super::cert::sha256;
use super::refusal::{self, Syntax};
use crate::error::Error;
use crate::exit::ExitStatus;

/// The trust file that stands for the system's CA store (msmtp's `tls_trust_file system`,
/// its default): the roots are then the system bundle's, and nothing else.
pub const SYSTEM_TRUST: &str = "system";

/// OpenSSL's variable naming the CA bundle to use instead of the system's (honoured by
/// curl, Python, rustls-native-certs and most TLS clients alike).
const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// Where distributions keep the system CA bundle (Debian's and Ubuntu's first), as
/// update-ca-certificates and its kin write it.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// How the server's certificate is checked.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// PEM file with extra certificates to trust (a private CA or a self-signed server),
    /// or [`SYSTEM_TRUST`] for the system's CA store alone, without the built-in roots.
    pub trust_file: Option<PathBuf>,
    /// SHA-256 of the server's end-entity certificate; when set, it alone decides trust.
    pub fingerprint: Option<Vec<u8>>,
    /// Verify the chain and host name; when false (opportunistic), failures are recorded, not fatal.
    pub verify: bool,
    /// A client certificate for AUTH EXTERNAL (RFC 4422 Appendix A) or a server that
    /// relays by certificate.
    pub client_cert: Option<ClientCert>,
    /// The syntax advice is written in (the line that pins a refused certificate, the TLS
    /// mode a port needs); `None` where nothing can be pinned (direct delivery).
    pub advice: Option<Syntax>,
}

/// A client certificate chain and its private key, PEM files (RFC 8446 §4.4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    /// Often the same file as `cert`.
    pub key: PathBuf,
}

/// Parse a SHA-256 fingerprint given as hex, with or without colons.
pub fn parse_fingerprint(text: &str) -> Result<Vec<u8>, String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "TLS fingerprint {text:?} is not a SHA-256 digest (64 hex digits)"
        ));
    }
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// A client config and the flag its verifier sets when the certificate checked out.
pub struct Tls {
    pub config: Arc<ClientConfig>,
    verified: Arc<AtomicBool>,
    unverified: Arc<Mutex<Option<String>>>,
    /// The end-entity certificate of the last handshake, kept by the verifier so that a
    /// refusal can say what was wrong with it (rustls drops it with the connection).
    presented: Arc<Mutex<Option<Vec<u8>>>>,
    pinned: bool,
    advice: Option<Syntax>,
}

impl Tls {
    /// Whether the last handshake's certificate was verified (chain and name, or pin).
    pub fn verified(&self) -> bool {
        self.verified.load(Ordering::SeqCst)
    }

    /// A config made elsewhere (DANE's), whose verifier keeps its own record of what it
    /// verified: this one's flag stays false.
    pub fn other(config: Arc<ClientConfig>) -> Tls {
        Tls {
            config,
            verified: Arc::new(AtomicBool::new(false)),
            unverified: Arc::new(Mutex::new(None)),
            presented: Arc::new(Mutex::new(None)),
            pinned: false,
            advice: None,
        }
    }

    /// Why the last handshake's certificate did not check out, when the handshake went on
    /// without it (opportunistic TLS, or verification turned off): for `--check`.
    pub fn unverified_because(&self) -> Option<String> {
        self.unverified.lock().ok().and_then(|why| why.clone())
    }
    /// A failed handshake with `host` in words: for a refused certificate, what is wrong
    /// with it, its fingerprint and the line that would trust it ([`refusal`]).
    pub fn describe_failure(&self, e: &std::io::Error, host: &str) -> String {
        let refused = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .and_then(|tls| match tls {
                rustls::Error::InvalidCertificate(c) => Some(c),
                _ => None,
            });
        let presented = self.presented.lock().ok().and_then(|p| p.clone());
        match (refused, presented) {
            (Some(error), Some(der)) => {
                refusal::describe(error, &der, host, self.pinned, self.advice)
            }
            _ => describe_handshake_error(e),
        }
    }
}

fn config_error(msg: String) -> Error {
    Error::Config(msg)
}

/// Build the client config. Roots are parsed here, so only a route that uses TLS pays.
pub fn client_config(settings: &TlsSettings) -> Result<Tls, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let bundles = system_bundles();
    let bundles: Vec<&str> = bundles.iter().map(String::as_str).collect();
    let (roots, trusted_leaves) = trust(settings.trust_file.as_deref(), &bundles)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Internal(format!("TLS verifier: {e}")))?;
    let verified = Arc::new(AtomicBool::new(false));
    let unverified = Arc::new(Mutex::new(None));
    let presented = Arc::new(Mutex::new(None));
    let verifier = Verifier {
        webpki,
        provider: provider.clone(),
        pin: settings.fingerprint.clone(),
        trusted_leaves,
        enforce: settings.verify,
        verified: verified.clone(),
        unverified: unverified.clone(),
        presented: presented.clone(),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Internal(format!("TLS config: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let (cert, key) = (&client.cert, &client.key);
            let (chain, key_der) = load_client_cert(cert, key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                config_error(format!(
                    "TLS client certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
    };
    Ok(Tls {
        config: Arc::new(config),
        verified,
        unverified,
        presented,
        pinned: settings.fingerprint.is_some(),
        advice: settings.advice,
    })
}

/// The roots to verify against, and the trust file's certificates (trusted as they are,
/// too): the built-in roots, the first of the system `bundles` there is, and the trust
/// file; or, for [`SYSTEM_TRUST`], the system bundle alone.
fn trust(
    trust_file: Option<&Path>,
    bundles: &[&str],
) -> Result<(RootCertStore, Vec<Vec<u8>>), Error> {
    let mut roots = RootCertStore::empty();
    let mut trusted_leaves = Vec::new();
    match trust_file {
        Some(path) if path == Path::new(SYSTEM_TRUST) => {
            add_system_roots(&mut roots, bundles)?;
        }
        trust_file => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // As well as the built-in roots, the CAs the administrator installed (an
            // internal CA signing the relay works as it does with msmtp). A machine
            // without a bundle, or with one we cannot read, still has the built-in roots.
            let _ = add_system_roots(&mut roots, bundles);
            if let Some(path) = trust_file {
                add_trust_file(&mut roots, &mut trusted_leaves, path)?;
            }
        }
    }
    Ok((roots, trusted_leaves))
}

/// The certificates of a trust file, each a root and a certificate trusted as it is.
fn add_trust_file(
    roots: &mut RootCertStore,
    trusted_leaves: &mut Vec<Vec<u8>>,
    path: &Path,
) -> Result<(), Error> {
    let pem = std::fs::read(path).map_err(|e| {
        config_error(format!(
            "cannot read TLS trust file {}: {e}",
            path.display()
        ))
    })?;
    let mut added = 0;
    for item in rustls_pemfile_certs(&pem) {
        let der =
            item.map_err(|e| config_error(format!("TLS trust file {}: {e}", path.display())))?;
        trusted_leaves.push(der.as_ref().to_vec());
        roots
            .add(der)
            .map_err(|e| config_error(format!("TLS trust file {}: {e}", path.display())))?;
        added += 1;
    }
    if added == 0 {
        return Err(config_error(format!(
            "TLS trust file {} holds no certificate",
            path.display()
        )));
    }
    Ok(())
}

/// Where to look for the system CA bundle: `$SSL_CERT_FILE` alone when it is set, else
/// the distributions' places.
fn system_bundles() -> Vec<String> {
    match std::env::var(SSL_CERT_FILE) {
        Ok(file) if !file.is_empty() => vec![file],
        _ => SYSTEM_BUNDLES.iter().map(|b| b.to_string()).collect(),
    }
}

/// The roots of the first system bundle in `bundles` that exists. A bundle holds
/// whatever the distribution ships, so a certificate webpki cannot use is skipped rather
/// than failing every connection; a bundle with no usable one is an error.
fn add_system_roots(roots: &mut RootCertStore, bundles: &[&str]) -> Result<(), Error> {
    for bundle in bundles {
        let pem = match std::fs::read(bundle) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(config_error(format!(
                    "cannot read the system CA store {bundle}: {e}"
                )));
            }
        };
        let certs = rustls_pemfile_certs(&pem)
            .into_iter()
            .filter_map(Result::ok);
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(config_error(format!(
                "the system CA store {bundle} holds no usable certificate"
            )));
        }
        return Ok(());
    }
    Err(config_error(format!(
        "tls_trust_file system: no system CA store found (looked for {}); install \
         ca-certificates or name a trust file",
        bundles.join(", ")
    )))
}

/// The client certificate chain and its key. The key file must be private: mode 0600 or
/// stricter, like a config file holding a password.
fn load_client_cert(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    use pki_types::pem::PemObject;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    let pem = std::fs::read(cert).map_err(|e| {
        config_error(format!(
            "cannot read TLS client certificate {}: {e}",
            cert.display()
        ))
    })?;
    let chain = rustls_pemfile_certs(&pem)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(format!("TLS client certificate {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(config_error(format!(
            "TLS client certificate {} holds no certificate",
            cert.display()
        )));
    }
    // fstat the open file, so the check applies to what is read.
    let mut file = std::fs::File::open(key)
        .map_err(|e| config_error(format!("cannot read TLS key {}: {e}", key.display())))?;
    let mode = file
        .metadata()
        .map_err(|e| config_error(format!("cannot read TLS key {}: {e}", key.display())))?
        .mode();
    if mode & 0o077 != 0 {
        return Err(config_error(format!(
            "TLS key {} is readable or writable by group or others (mode {:04o}); run chmod 600 {}",
            key.display(),
            mode & 0o7777,
            key.display()
        )));
    }
    let mut key_pem = Vec::new();
    file.read_to_end(&mut key_pem)
        .map_err(|e| config_error(format!("cannot read TLS key {}: {e}", key.display())))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| config_error(format!("TLS key {}: no private key ({e})", key.display())))?;
    Ok((chain, key_der))
}

/// Certificates from PEM text, without another dependency.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<Result<CertificateDer<'static>, String>> {
    use pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
}

/// The handshake-signature half of a [`ServerCertVerifier`] whose certificate check is our
/// own (a pin and trusted leaves here, TLSA records in `delivery::policy::dane`): the
/// signatures are checked with the crypto provider's algorithms, as rustls'
/// `WebPkiServerVerifier` checks them. Expands to the three methods, reading the provider
/// (an `Arc<CryptoProvider>`) from the named field.
macro_rules! signatures_by_provider {
    ($provider:ident) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &::rustls::pki_types::CertificateDer<'_>,
            dss: &::rustls::DigitallySignedStruct,
        ) -> ::core::result::Result<
            ::rustls::client::danger::HandshakeSignatureValid,
            ::rustls::Error,
        > {
            ::rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.$provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &::rustls::pki_types::CertificateDer<'_>,
            dss: &::rustls::DigitallySignedStruct,
        ) -> ::core::result::Result<
            ::rustls::client::danger::HandshakeSignatureValid,
            ::rustls::Error,
        > {
            ::rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.$provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<::rustls::SignatureScheme> {
            self.$provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}
pub(crate) use signatures_by_provider;

/// Verifies like webpki, or by pin; in opportunistic mode records failure instead.
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    pin: Option<Vec<u8>>,
    /// Certificates from the trust file, DER: a server presenting one of these exactly is
    /// trusted even when it is marked as a CA (as `openssl req -x509` makes them), which
    /// webpki refuses as an end-entity certificate.
    trusted_leaves: Vec<Vec<u8>>,
    enforce: bool,
    verified: Arc<AtomicBool>,
    /// Why the certificate was not verified, when `enforce` is off.
    unverified: Arc<Mutex<Option<String>>>,
    presented: Arc<Mutex<Option<Vec<u8>>>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier")
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verified.store(false, Ordering::SeqCst);
        if let Ok(mut why) = self.unverified.lock() {
            *why = None;
        }
        if let Ok(mut presented) = self.presented.lock() {
            *presented = Some(end_entity.as_ref().to_vec());
        }
        if let Some(pin) = &self.pin {
            return if sha256(end_entity.as_ref()) == *pin {
                self.verified.store(true, Ordering::SeqCst);
                Ok(ServerCertVerified::assertion())
            } else {
                // Described with the certificate by `refusal`.
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            };
        }
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(v) => {
                self.verified.store(true, Ordering::SeqCst);
                Ok(v)
            }
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::Other(_),
            )) if self
                .trusted_leaves
                .iter()
                .any(|t| t.as_slice() == end_entity.as_ref()) =>
            {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                self.verified.store(true, Ordering::SeqCst);
                Ok(ServerCertVerified::assertion())
            }
            Err(e) if self.enforce => Err(e),
            Err(e) => {
                if let Ok(mut why) = self.unverified.lock() {
                    *why = Some(describe_tls_error(&e));
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    signatures_by_provider!(provider);
}

/// A handshake failure in words: which certificate check failed, not rustls' debug form.
pub fn describe_handshake_error(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("handshake failed: {}", describe_tls_error(tls)),
        None => crate::transport::describe_io(e),
    }
}

/// What rustls found wrong, in words: which certificate check failed.
fn describe_tls_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::Other(_) => {
                "certificate is not signed by a trusted authority (use --tls-trust-file \
                     or --tls-fingerprint)"
                    .to_string()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate is not valid yet".to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate is not valid for this host name".to_string()
            }
            CertificateError::Revoked => "certificate is revoked".to_string(),
            CertificateError::BadSignature => {
                "certificate signature does not verify against the trusted certificates \
                     (was the server's certificate renewed?)"
                    .to_string()
            }
            CertificateError::BadEncoding => "certificate is malformed".to_string(),
            other => format!("certificate rejected: {other:?}"),
        },
        rustls::Error::General(msg) => msg.clone(),
        other => other.to_string(),
    }
}

/// The server name to verify: an IP address or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_string())
        .map_err(|_| Error::Usage(format!("{host:?} is not a valid host name for TLS")))
}

/// A TLS failure as the library reports it: always temporary, so the caller keeps the
/// message and retries once the certificate or the server is fixed.
pub fn tls_failure(host: &str, detail: impl fmt::Display) -> Error {
    Error::Tls {
        host: host.to_string(),
        detail: detail.to_string(),
        status: ExitStatus::TempFail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_fingerprint(&hex).unwrap(), vec![0xAB; 32]);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), vec![0xAB; 32]);
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn system_trust_takes_the_first_bundle_there_is_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let bundle = dir.path().join("bundle.crt");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(&bundle, format!("junk before\n{}", ca.pem())).unwrap();
        let mut roots = RootCertStore::empty();
        let paths = [missing.to_str().unwrap(), bundle.to_str().unwrap()];
        add_system_roots(&mut roots, &paths).unwrap();
        assert_eq!(roots.len(), 1, "only the bundle's root, no built-in ones");
        let err = add_system_roots(&mut RootCertStore::empty(), &paths[..1]).unwrap_err();
        assert!(
            err.to_string().contains("no system CA store found"),
            "{err}"
        );
    }

    #[test]
    fn the_system_store_is_trusted_besides_the_built_in_roots_unless_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap().pem()
        };
        let bundle = dir.path().join("bundle.crt");
        std::fs::write(&bundle, format!("{}{}", ca("one"), ca("two"))).unwrap();
        let extra = dir.path().join("extra.pem");
        std::fs::write(&extra, ca("extra")).unwrap();
        let missing = dir.path().join("missing.crt");
        let bundles = [bundle.to_str().unwrap()];
        let built_in = webpki_roots::TLS_SERVER_ROOTS.len();

        let (roots, leaves) = trust(None, &bundles).unwrap();
        assert_eq!(roots.len(), built_in + 2);
        assert!(leaves.is_empty());
        let (roots, leaves) = trust(Some(&extra), &bundles).unwrap();
        assert_eq!(roots.len(), built_in + 3);
        assert_eq!(leaves.len(), 1);
        // Narrowed to the system store: its two, nothing built in.
        let (roots, _) = trust(Some(Path::new(SYSTEM_TRUST)), &bundles).unwrap();
        assert_eq!(roots.len(), 2);
        // No system store: the built-in roots still, unless the system store was asked for.
        let (roots, _) = trust(None, &[missing.to_str().unwrap()]).unwrap();
        assert_eq!(roots.len(), built_in);
        assert!(trust(Some(Path::new(SYSTEM_TRUST)), &[missing.to_str().unwrap()]).is_err());
    }

    #[test]
    fn the_system_store_builds_a_client_config_when_the_machine_has_one() {
        let settings = TlsSettings {
            trust_file: Some(PathBuf::from(SYSTEM_TRUST)),
            verify: true,
            ..TlsSettings::default()
        };
        let present = system_bundles().iter().any(|b| Path::new(b).exists());
        assert_eq!(client_config(&settings).is_ok(), present);
    }
}
