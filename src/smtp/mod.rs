//! The SMTP protocol, sans-IO: reply parser, command encoder, capabilities, the client
//! session state machine, the SASL mechanisms and the DATA body encoder. Nothing here touches a socket, a clock
//! or a file, so every server behaviour is testable with byte strings.

pub mod body;
pub mod capabilities;
pub mod command;
pub mod engine;
pub mod error;
pub mod failure;
pub mod flight;
pub mod probe;
pub mod reply;
pub mod sasl;
pub mod session;

#[cfg(test)]
mod session_tests;

pub use body::BodyEncoder;
pub use capabilities::Capabilities;
pub use command::Command;
pub use engine::{Engine, TraceLine, Wait};
pub use error::{RcptFailure, SessionError};
pub use failure::Failure;
pub use reply::{Reply, ReplyError, ReplyParser};
pub use sasl::{Credentials, Mechanism, SaslError, Secret, SecretKind};
pub use session::{Dsn, Envelope, Event, MessageInfo, Report, Session, SessionOptions, TlsPolicy};
