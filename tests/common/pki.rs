//! Certificates made in the test with rcgen: nothing is read from the machine's trust store.

use std::path::PathBuf;
use std::sync::Arc;

use pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, date_time_ymd,
};
use tempfile::TempDir;

/// The names every test certificate is valid for: the tests only ever dial 127.0.0.1.
const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A server certificate, its key, and a PEM file a client can be told to trust.
pub struct Pki {
    /// The chain the server presents, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key, PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
    /// The leaf's SubjectPublicKeyInfo, DER, as rcgen made the key (for TLSA selector 1).
    pub spki: Vec<u8>,
    /// The issuing CA's SubjectPublicKeyInfo, DER, when there is a CA.
    pub ca_spki: Option<Vec<u8>>,
    /// A PEM file holding the certificate a client should trust: the leaf itself when
    /// self-signed, otherwise the CA that issued it.
    pub trust_file: PathBuf,
    _dir: TempDir,
}

impl Pki {
    /// A self-signed certificate for localhost and 127.0.0.1, trusted by pinning the file.
    pub fn self_signed() -> Pki {
        Pki::self_signed_from(leaf_params())
    }

    /// A self-signed certificate for these names only, trusted by pinning the file: a
    /// client that dials 127.0.0.1 must refuse it although it trusts the certificate.
    pub fn self_signed_for(names: &[&str]) -> Pki {
        Pki::self_signed_from(params_for(names))
    }

    /// A self-signed certificate for localhost and 127.0.0.1 that expired in 2021, trusted
    /// by pinning the file.
    pub fn self_signed_expired() -> Pki {
        Pki::self_signed_from(expired(leaf_params()))
    }

    fn self_signed_from(params: CertificateParams) -> Pki {
        let key = KeyPair::generate().expect("generate key");
        let cert = params.self_signed(&key).expect("self-sign certificate");
        let pem = cert.pem();
        Pki::assemble(vec![cert.der().clone()], &key, &pem, None)
    }

    /// A leaf for localhost and 127.0.0.1 issued by a throw-away CA; the trust file holds
    /// the CA only, so the client has to verify a real chain.
    pub fn ca_signed() -> Pki {
        Pki::ca_signed_from(leaf_params())
    }

    /// A leaf for localhost and 127.0.0.1 that expired in 2021, issued by a CA that is
    /// still valid; the trust file holds the CA only.
    pub fn ca_signed_expired() -> Pki {
        Pki::ca_signed_from(expired(leaf_params()))
    }

    /// A leaf for these names only, issued by a throw-away CA held in the trust file.
    pub fn ca_signed_for(names: &[&str]) -> Pki {
        Pki::ca_signed_from(params_for(names))
    }

    /// A leaf without subject alternative names, named only by its common name `cn`, issued
    /// by a throw-away CA held in the trust file.
    pub fn ca_signed_cn_only(cn: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        Pki::ca_signed_from(params)
    }

    /// Two leaves from one throw-away CA: for the `first` names and for the `second`.
    pub fn ca_signed_pair(first: &[&str], second: &[&str]) -> (Pki, Pki) {
        let ca = TestCa::new();
        (ca.issue(params_for(first)), ca.issue(params_for(second)))
    }

    fn ca_signed_from(leaf: CertificateParams) -> Pki {
        TestCa::new().issue(leaf)
    }

    fn assemble(
        chain: Vec<CertificateDer<'static>>,
        key: &KeyPair,
        trust_pem: &str,
        ca_spki: Option<Vec<u8>>,
    ) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let trust_file = dir.path().join("trust.pem");
        std::fs::write(&trust_file, trust_pem).expect("write trust file");
        Pki {
            chain,
            key_pkcs8: key.serialize_der(),
            spki: key.subject_public_key_info(),
            ca_spki,
            trust_file,
            _dir: dir,
        }
    }

    /// SHA-256 of the leaf certificate's DER, lowercase hex: what `--tls-fingerprint` pins.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.chain[0].as_ref());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// [`Pki::fingerprint`] as openssl and `--serverinfo` print it: upper-case hex pairs
    /// joined by colons.
    pub fn colon_fingerprint(&self) -> String {
        let hex = self.fingerprint().to_ascii_uppercase();
        (0..hex.len())
            .step_by(2)
            .map(|i| &hex[i..i + 2])
            .collect::<Vec<_>>()
            .join(":")
    }

    /// A rustls server configuration presenting this chain that asks for a client
    /// certificate and accepts one issued by `clients`' CA; a client without one may still
    /// connect (the server records whether one came).
    pub fn server_config_with_client_ca(&self, clients: &ClientPki) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(clients.ca.clone()).expect("client CA");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .expect("client verifier");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), key)
            .expect("server certificate");
        Arc::new(config)
    }

    /// A rustls server configuration presenting this chain.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .expect("server certificate");
        Arc::new(config)
    }
}

/// A throw-away CA and one client certificate it issued, in PEM files for `--tls-cert`
/// and `--tls-key`; the key file is private (0600), as the client insists.
pub struct ClientPki {
    pub ca: CertificateDer<'static>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    _dir: TempDir,
}

impl ClientPki {
    pub fn new() -> ClientPki {
        use std::os::unix::fs::PermissionsExt;

        let ca_key = KeyPair::generate().expect("generate client CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "smtpsend test client CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign client CA");
        let ca = ca_cert.der().clone();
        let issuer = Issuer::new(ca_params, ca_key);

        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "alice@example.org");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("generate client key");
        let cert = params.signed_by(&key, &issuer).expect("sign client cert");

        let dir = tempfile::tempdir().expect("temp dir for the client certificate");
        let cert_file = dir.path().join("client.pem");
        let key_file = dir.path().join("client.key");
        std::fs::write(&cert_file, cert.pem()).expect("write client cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write client key");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600 client key");
        ClientPki {
            ca,
            cert_file,
            key_file,
            _dir: dir,
        }
    }
}

fn leaf_params() -> CertificateParams {
    params_for(&NAMES)
}

/// A leaf whose subject alternative names are `names`; the common name is the first.
fn params_for(names: &[&str]) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("test"));
    params
}

/// Valid during 2020 only: long expired, but well formed.
fn expired(mut params: CertificateParams) -> CertificateParams {
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2021, 1, 1);
    params
}

/// A throw-away CA that issues leaves.
struct TestCa {
    cert: rcgen::Certificate,
    spki: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "smtpsend test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign CA");
        let spki = key.subject_public_key_info();
        TestCa {
            cert,
            spki,
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, leaf: CertificateParams) -> Pki {
        let leaf_key = KeyPair::generate().expect("generate leaf key");
        let leaf = leaf.signed_by(&leaf_key, &self.issuer).expect("sign leaf");
        Pki::assemble(
            vec![leaf.der().clone(), self.cert.der().clone()],
            &leaf_key,
            &self.cert.pem(),
            Some(self.spki.clone()),
        )
    }
}
