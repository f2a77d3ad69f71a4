//! Connections: TCP with deadlines, TLS with rustls (STARTTLS upgrade and implicit TLS).

pub mod cert;
pub mod connect;
pub mod mismatch;
pub mod refusal;
pub mod stream;
pub mod tls;
pub mod wait;

pub use connect::{connect, connect_addrs, describe_io, resolve};
pub use stream::Stream;
pub use tls::{ClientCert, Tls, TlsSettings};

use std::fmt;
use std::str::FromStr;

/// How a connection uses TLS, as the user chooses it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Cleartext only.
    Off,
    /// STARTTLS when offered, with certificate checks relaxed (RFC 7435).
    Opportunistic,
    /// STARTTLS, verified; nothing is sent without it. The default for relays.
    #[default]
    Required,
    /// TLS from the first byte (port 465, RFC 8314).
    Implicit,
}

impl FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "no" | "none" => Ok(TlsMode::Off),
            "opportunistic" | "may" => Ok(TlsMode::Opportunistic),
            "required" | "starttls" | "on" | "yes" => Ok(TlsMode::Required),
            "implicit" | "smtps" | "tls" => Ok(TlsMode::Implicit),
            other => Err(format!(
                "unknown TLS mode {other:?} (expected off, opportunistic, required or implicit)"
            )),
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Off => "off",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::Required => "required",
            TlsMode::Implicit => "implicit",
        })
    }
}

/// How a TLS policy that a destination publishes for itself (DANE, MTA-STS) is used.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyUse {
    /// Not looked up at all.
    Off,
    /// Applied where the destination publishes it; elsewhere TLS as without it.
    #[default]
    On,
    /// Demanded: a destination without it is deferred, never sent to without it.
    Require,
}

impl FromStr for PolicyUse {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "no" | "false" => Ok(PolicyUse::Off),
            "on" | "yes" | "true" | "auto" => Ok(PolicyUse::On),
            "require" | "required" => Ok(PolicyUse::Require),
            other => Err(format!(
                "unknown policy use {other:?} (expected off, on or require)"
            )),
        }
    }
}

impl fmt::Display for PolicyUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyUse::Off => "off",
            PolicyUse::On => "on",
            PolicyUse::Require => "require",
        })
    }
}

impl PolicyUse {
    pub fn is_default(&self) -> bool {
        *self == PolicyUse::On
    }
}

impl TlsMode {
    /// The port a relay listens on for this mode: 465 for implicit TLS, 587 for submission.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Implicit => 465,
            _ => 587,
        }
    }
}
