//! The policy fetch (RFC 8461 §3.3): `GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
//! over the project's own transport, so that the host is resolved by the same DNS
//! resolver as the MX hosts, every wait is under one deadline, and the certificate is
//! checked like any verified TLS connection of smtpsend: web PKI roots (plus an optional
//! trust file), valid for `mta-sts.DOMAIN`, not expired.
//!
//! ureq, used for OAuth, was not: it resolves with the system's resolver (a custom one is
//! an unversioned API) and cannot add roots to the web PKI's, only replace them.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use super::http::{HttpError, ResponseReader};
use crate::delivery::resolve::Resolver;
use crate::error::Error;
use crate::transport::tls::{client_config, describe_handshake_error, server_name};
use crate::transport::{Stream, TlsSettings, connect_addrs, describe_io};

/// §3.3 recommends refusing a policy longer than 64 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;
/// §3.3 recommends a timeout of 60 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The policy's place on the host (§3.3, RFC 8615).
pub const WELL_KNOWN_PATH: &str = "/.well-known/mta-sts.txt";

/// How policies are fetched.
#[derive(Clone, Debug)]
pub struct FetchSettings {
    /// A PEM file of certificates trusted besides the web PKI roots: a private CA, or a
    /// test's. `None`: the web PKI only, as §3.3 expects.
    pub extra_trust: Option<PathBuf>,
    /// The HTTPS port: 443, except in tests.
    pub port: u16,
    /// One deadline for the whole fetch: connect, handshake, request and response. The
    /// DNS lookup of `mta-sts.DOMAIN` has the resolver's own timeout.
    pub timeout: Duration,
}

impl Default for FetchSettings {
    fn default() -> FetchSettings {
        FetchSettings {
            extra_trust: None,
            port: 443,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Fetches policies; build one per run and share it.
///
/// A failed fetch is remembered for the fetcher's life and not tried again: §3.3 invites
/// rate-limiting fetches, and a queue run with many messages for a domain whose policy
/// host is down would otherwise wait out the timeout once per message.
pub struct Fetcher {
    tls: Arc<ClientConfig>,
    port: u16,
    timeout: Duration,
    failed: Mutex<HashMap<String, FetchError>>,
}

/// Why a policy could not be fetched: the domain is then treated as having no policy,
/// unless a valid one is cached (§3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    /// `mta-sts.DOMAIN`.
    pub host: String,
    pub kind: FetchErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchErrorKind {
    /// No address for the host, or the DNS lookup failed.
    Resolve(String),
    /// No connection to any of its addresses.
    Connect(String),
    /// The TLS handshake failed: most often a certificate that is not trusted or not for
    /// this host name.
    Tls(String),
    /// Reading or writing failed, or the deadline passed.
    Io(String),
    /// The response is not a policy (a redirect, another status, the wrong type, too long).
    Http(HttpError),
    /// The body is not text.
    NotText,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = &self.host;
        match &self.kind {
            FetchErrorKind::Resolve(d) => write!(f, "{host}: {d}"),
            FetchErrorKind::Connect(d) => write!(f, "{host}: {d}"),
            FetchErrorKind::Tls(d) => write!(f, "{host}: TLS: {d}"),
            FetchErrorKind::Io(d) => write!(f, "{host}: {d}"),
            FetchErrorKind::Http(e) => write!(f, "{host}: {e}"),
            FetchErrorKind::NotText => write!(f, "{host}: the policy is not UTF-8 text"),
        }
    }
}

impl std::error::Error for FetchError {}

impl Fetcher {
    /// Errors: an unreadable trust file, or one without a certificate → [`Error::Config`].
    pub fn new(settings: &FetchSettings) -> Result<Fetcher, Error> {
        let tls = client_config(&TlsSettings {
            trust_file: settings.extra_trust.clone(),
            fingerprint: None,
            verify: true,
            client_cert: None,
            advice: None,
        })?;
        Ok(Fetcher {
            tls: tls.config,
            port: settings.port,
            timeout: settings.timeout,
            failed: Mutex::new(HashMap::new()),
        })
    }

    /// The policy text of `domain` (lower-case A-labels), from
    /// `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`. No redirect is followed, no HTTP
    /// cache is consulted (§3.3). A domain whose fetch failed before gets that failure
    /// again, without a connection.
    pub fn fetch(&self, domain: &str, resolver: &Resolver) -> Result<String, FetchError> {
        if let Some(failure) = lock(&self.failed).get(domain) {
            return Err(failure.clone());
        }
        self.fetch_now(domain, resolver).inspect_err(|e| {
            lock(&self.failed).insert(domain.to_string(), e.clone());
        })
    }

    fn fetch_now(&self, domain: &str, resolver: &Resolver) -> Result<String, FetchError> {
        let host = format!("mta-sts.{domain}");
        let fail = |kind| FetchError {
            host: host.clone(),
            kind,
        };
        let addrs = resolver
            .addresses(&host)
            .map_err(|e| fail(FetchErrorKind::Resolve(detail(&e))))?;
        let name = server_name(&host).map_err(|e| fail(FetchErrorKind::Resolve(detail(&e))))?;
        let deadline = Instant::now() + self.timeout;
        let mut failure = None;
        let mut connected = None;
        for ip in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match connect_addrs(&host, &[SocketAddr::new(ip, self.port)], left) {
                Ok((sock, _)) => {
                    connected = Some(sock);
                    break;
                }
                Err(e) => failure = Some(detail(&e)),
            }
        }
        let Some(sock) = connected else {
            let why = failure.unwrap_or_else(|| "timed out".into());
            return Err(fail(FetchErrorKind::Connect(why)));
        };
        let mut stream = Stream::new(sock);
        stream
            .start_tls(self.tls.clone(), name, deadline)
            .map_err(|e| fail(FetchErrorKind::Tls(describe_handshake_error(&e))))?;
        let io = |e: std::io::Error| fail(FetchErrorKind::Io(describe_io(&e)));
        stream
            .write_all(self.request(&host).as_bytes(), deadline)
            .map_err(io)?;
        let mut reader = ResponseReader::new(BODY_LIMIT);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf, deadline).map_err(io)?;
            if n == 0 {
                break;
            }
            if reader
                .feed(&buf[..n])
                .map_err(|e| fail(FetchErrorKind::Http(e)))?
            {
                break;
            }
        }
        stream.close(deadline.min(Instant::now() + Duration::from_secs(1)));
        let body = reader.finish().map_err(|e| fail(FetchErrorKind::Http(e)))?;
        String::from_utf8(body).map_err(|_| fail(FetchErrorKind::NotText))
    }

    /// RFC 9112 §3: one request, then the server may close.
    fn request(&self, host: &str) -> String {
        let authority = if self.port == 443 {
            host.to_string()
        } else {
            format!("{host}:{}", self.port)
        };
        format!(
            "GET {WELL_KNOWN_PATH} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: smtpsend/{}\r\n\
             Accept: text/plain\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// A poisoned map is still a valid map: every entry was inserted whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reason without the host name, which [`FetchError`] adds once.
fn detail(e: &Error) -> String {
    match e {
        Error::NoHost { detail, .. } | Error::Tls { detail, .. } => detail.clone(),
        Error::Network { host, .. } => {
            let text = e.to_string();
            text.strip_prefix(&format!("{host}: "))
                .unwrap_or(&text)
                .to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_the_host_and_port_and_asks_for_text() {
        let fetcher = Fetcher::new(&FetchSettings::default()).unwrap();
        assert_eq!(
            fetcher.request("mta-sts.example.org"),
            format!(
                "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.org\r\n\
                 User-Agent: smtpsend/{}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let fetcher = Fetcher::new(&FetchSettings {
            port: 8443,
            ..FetchSettings::default()
        })
        .unwrap();
        assert!(
            fetcher
                .request("mta-sts.example.org")
                .contains("\r\nHost: mta-sts.example.org:8443\r\n")
        );
    }

    #[test]
    fn unreadable_trust_file_is_a_config_error() {
        let err = Fetcher::new(&FetchSettings {
            extra_trust: Some("/nonexistent/trust.pem".into()),
            ..FetchSettings::default()
        })
        .err()
        .unwrap();
        assert_eq!(err.exit_status(), crate::ExitStatus::Config);
    }
}
