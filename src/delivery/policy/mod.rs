//! TLS policies a destination publishes for itself, as opposed to what the user configures
//! (`--tls`, trust files, pins): DANE for SMTP (RFC 7672) and MTA-STS (RFC 8461).

pub mod dane;
pub mod host;
pub mod mta_sts;
pub mod tlsa;

pub use dane::{DaneMatch, DanePolicy, DaneTls, Tlsa};
