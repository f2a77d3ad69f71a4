//! MTA-STS (RFC 8461): whether a recipient domain asks for TLS to its MX hosts, and which
//! hosts those are.

pub mod fetch;
pub mod http;
pub mod policy;
pub mod record;

pub use fetch::{FetchError, FetchErrorKind, FetchSettings, Fetcher};
pub use policy::{Mode, MxCheck, MxPattern, Policy, PolicyError};
pub use record::{Record, RecordError};
