//! Policies that decide how TLS to a recipient domain's MX hosts must be verified.

pub mod mta_sts;
