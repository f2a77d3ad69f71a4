//! smtpsend: a command-line SMTP client and drop-in sendmail replacement.
//!
//! The SMTP protocol lives in [`smtp`], sans-IO; [`transport`] owns sockets and TLS;
//! [`deliver`] runs sessions; [`cli`] and `main` are a thin layer over them.

pub mod address;
pub mod aliases;
pub mod cli;
pub mod compose;
pub mod config;
pub mod deliver;
pub mod diagnose;
pub mod direct;
pub mod error;
pub mod exit;
pub mod flush;
pub mod identity;
pub mod local;
pub mod log;
pub mod message;
pub mod oauth;
pub mod pool;
pub mod queue;
pub mod recipients;
pub mod resolve;
pub mod smtp;
pub mod smtp_stdio;
pub mod submit;
pub mod terminal;
pub mod tls_policy;
pub mod transport;

pub use error::{Error, Result};
pub use exit::ExitStatus;
