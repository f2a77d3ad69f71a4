//! MTA-STS (RFC 8461): whether a recipient domain asks for TLS to its MX hosts, and which
//! hosts those are.

pub mod policy;
pub mod record;

pub use policy::{Mode, MxCheck, MxPattern, Policy, PolicyError};
pub use record::{Record, RecordError};
