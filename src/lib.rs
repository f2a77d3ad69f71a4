//! smtpsend: a command-line SMTP client and drop-in sendmail replacement.
//!
//! The SMTP protocol lives in [`smtp`], sans-IO; [`transport`] owns sockets and TLS;
//! [`delivery`] runs sessions; [`app`] and `main` are a thin layer over them.

pub mod app;
pub mod config;
pub mod delivery;
pub mod error;
pub mod exit;
pub mod message;
pub mod oauth;
pub mod os_error;
pub mod queue;
pub mod smtp;
pub mod system;
pub mod transport;

pub use error::{Error, Result};
pub use exit::ExitStatus;
