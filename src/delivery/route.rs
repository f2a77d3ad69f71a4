//! Where a message goes and how: the live [`Route`] a connection is made from, and the
//! [`RouteSpec`] a spool entry keeps so that a later queue run sends it the same way,
//! whatever the defaults of the process that runs the queue.
//!
//! The one place that turns a [`TlsMode`] into what the session insists on and what the
//! certificate check does ([`Route::session_tls`], [`Route::tls_settings_for_handshake`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::delivery::policy::tlsa::Tlsa;
use crate::error::Error;
use crate::smtp::{TlsPolicy, Wait};
use crate::transport::{self, PolicyUse, TlsMode, TlsSettings};

/// How we present ourselves and what we watch: the same for every route of a run.
#[derive(Clone, Debug)]
pub struct Client {
    /// The name for EHLO when the route names none.
    pub ehlo: String,
    /// Use PIPELINING when offered.
    pub pipelining: bool,
    /// Record a `C:`/`S:` trace of the dialogue.
    pub trace: bool,
    /// Show upload progress (when stderr is a terminal).
    pub progress: bool,
    pub timeouts: Timeouts,
    /// Where MTA-STS policies are cached between runs.
    pub mta_sts_cache: Option<PathBuf>,
}

/// The TLSA records that authenticate an exchanger (RFC 7672 §3), and the names a
/// DANE-TA match must carry (§3.2.2).
#[derive(Clone, Debug)]
pub struct DaneRecords {
    pub records: Vec<Tlsa>,
    pub names: Vec<String>,
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Route {
    /// The host name: connected to, verified in TLS, named in messages.
    pub host: String,
    pub port: u16,
    /// Addresses already resolved (direct delivery); otherwise `host` is resolved.
    pub addrs: Option<Vec<std::net::SocketAddr>>,
    pub tls: TlsMode,
    pub tls_settings: TlsSettings,
    pub timeouts: Timeouts,
    /// Show upload progress (when stderr is a terminal).
    pub progress: bool,
    /// DANE authenticates the server instead of the web PKI (direct delivery).
    pub dane: Option<DaneRecords>,
    /// The TLS policy that applied, for `-v` and the log (direct delivery):
    /// `mta-sts enforce`, `opportunistic`, ...; a DANE match names itself.
    pub policy: Option<String>,
}

/// Time limits (RFC 5321 §4.5.3.2 unless overridden).
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// One value for every command wait instead of the RFC's per-command ones.
    pub command: Option<Duration>,
    /// A deadline for the whole session.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            command: None,
            total: None,
        }
    }
}

impl Timeouts {
    /// How long to wait for what the session waits for.
    pub fn for_wait(&self, wait: Wait) -> Duration {
        self.command.unwrap_or_else(|| wait.default_timeout())
    }
}

impl Route {
    /// The name sent in SNI, which the certificate must carry unless DANE says otherwise:
    /// the host, or with DANE the TLSA base domain (RFC 7672 §8.1), which is the host's
    /// CNAME-expanded name when its records were found there.
    pub fn tls_name(&self) -> Result<pki_types::ServerName<'static>, Error> {
        let name = self.dane.as_ref().and_then(|d| d.names.first());
        transport::tls::server_name(name.unwrap_or(&self.host))
    }

    /// What the session insists on, and whether TLS is on from the first byte.
    pub fn session_tls(&self) -> (TlsPolicy, bool) {
        let policy = match self.tls {
            TlsMode::Off => TlsPolicy::Off,
            TlsMode::Opportunistic => TlsPolicy::Opportunistic,
            TlsMode::Required | TlsMode::Implicit => TlsPolicy::Required,
        };
        (policy, self.tls == TlsMode::Implicit)
    }

    /// The certificate check for a handshake on this route: verified unless the mode is
    /// opportunistic (RFC 7435: encrypt, record whether the certificate checked out, go
    /// on either way). `None` when the route never starts TLS.
    pub fn tls_settings_for_handshake(&self) -> Option<TlsSettings> {
        match self.tls {
            TlsMode::Off => None,
            mode => Some(TlsSettings {
                verify: mode != TlsMode::Opportunistic && self.tls_settings.verify,
                ..self.tls_settings.clone()
            }),
        }
    }
}

/// How a message was to be sent, as a spool entry records it (RFC 5321 §4.5.4.1: a
/// retry goes the way the first attempt went). Only names and paths: the secrets are
/// looked up again from the account when the entry is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteSpec {
    Relay(RelaySpec),
    Direct(DirectSpec),
}

/// A relay and whose credentials it gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelaySpec {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_trust_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// The account whose secrets (password, token, client certificate) go to this relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    /// A user named on the command line (`--user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A mechanism forced with `--auth` or the account's `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// `--oauth`: the secret from the environment is an access token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oauth: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_auth: bool,
    /// The relay was named on the command line (`--host`), not by the account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_command_line: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehlo: Option<String>,
}

/// An account of a config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    pub name: String,
    pub config: PathBuf,
}

/// Direct delivery to each domain's exchangers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectSpec {
    /// Opportunistic unless `required` was asked for.
    pub tls: TlsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_trust_file: Option<PathBuf>,
    /// Domains whose exchangers must present a verified certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_domains: Vec<String>,
    /// `--dns-server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
    /// `--mx-port` (a testing aid); 25 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehlo: Option<String>,
    /// DANE for the exchangers (RFC 7672): on where published, off, or required.
    #[serde(default, skip_serializing_if = "PolicyUse::is_default")]
    pub dane: PolicyUse,
    /// MTA-STS for the recipient domains (RFC 8461): on where published, off, or required.
    #[serde(default, skip_serializing_if = "PolicyUse::is_default")]
    pub mta_sts: PolicyUse,
    /// DNSKEY records to validate from instead of the IANA root's (tests, private roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnssec_trust_anchor: Option<PathBuf>,
    /// Domains whose exchangers must be authenticated by DANE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dane_domains: Vec<String>,
    /// Domains that must have an MTA-STS policy in mode enforce.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mta_sts_domains: Vec<String>,
    /// Certificates trusted for MTA-STS policy hosts besides the web PKI (tests, private
    /// CAs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mta_sts_trust_file: Option<PathBuf>,
    /// The HTTPS port of policy hosts (a testing aid); 443 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mta_sts_port: Option<u16>,
}

impl RouteSpec {
    /// How the route is named in messages: `smtp.example.org:587`, or `direct delivery`.
    pub fn describe(&self) -> String {
        match self {
            RouteSpec::Relay(r) => format!("{}:{}", r.host, r.port),
            RouteSpec::Direct(_) => "direct delivery".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_spec_survives_toml() {
        let spec = RouteSpec::Relay(RelaySpec {
            host: "smtp.example.org".into(),
            port: 587,
            tls: TlsMode::Required,
            tls_trust_file: Some("/etc/ssl/ca.pem".into()),
            tls_fingerprint: None,
            tls_cert: None,
            tls_key: None,
            account: Some(AccountRef {
                name: "work".into(),
                config: "/home/me/.config/smtpsend/config.toml".into(),
            }),
            user: None,
            auth: Some("plain".into()),
            oauth: false,
            insecure_auth: false,
            from_command_line: false,
            ehlo: None,
        });
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder {
            route: RouteSpec,
        }
        let text = toml::to_string(&Holder {
            route: spec.clone(),
        })
        .unwrap();
        assert!(text.contains("kind = \"relay\""), "{text}");
        assert!(text.contains("tls = \"required\""), "{text}");
        let back: Holder = toml::from_str(&text).unwrap();
        assert_eq!(back.route, spec);
    }

    #[test]
    fn a_direct_spec_survives_toml() {
        let spec = RouteSpec::Direct(DirectSpec {
            tls: TlsMode::Opportunistic,
            mx_port: Some(2525),
            dns_server: Some("127.0.0.1:5353".into()),
            ..DirectSpec::default()
        });
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder {
            route: RouteSpec,
        }
        let text = toml::to_string(&Holder {
            route: spec.clone(),
        })
        .unwrap();
        let back: Holder = toml::from_str(&text).unwrap();
        assert_eq!(back.route, spec);
    }
}
