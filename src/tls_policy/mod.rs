//! TLS policies a destination publishes for itself, as opposed to what the user configures
//! (`--tls`, trust files, pins): today DANE for SMTP (RFC 7672).

pub mod dane;

pub use dane::{DaneMatch, DanePolicy, DaneTls, Tlsa};
