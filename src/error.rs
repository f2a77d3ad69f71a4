//! The library's error type: every failure knows its sysexits status and keeps the
//! server's words, so `main` can print one line and exit with the right code.

use std::io;

use crate::exit::ExitStatus;
use crate::os_error::{describe, describe_network};
use crate::smtp::{RcptFailure, SessionError};

/// Any failure of smtpsend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong (EX_USAGE).
    #[error("{0}")]
    Usage(String),
    /// The message or an address in it is malformed (EX_DATAERR).
    #[error("{0}")]
    Data(String),
    /// An input file is missing or unreadable (EX_NOINPUT).
    #[error("{0}")]
    NoInput(String),
    /// The configuration is wrong or unsafe (EX_CONFIG).
    #[error("{0}")]
    Config(String),
    /// A host name does not resolve (EX_NOHOST).
    #[error("{host}: {detail}")]
    NoHost { host: String, detail: String },
    /// The network failed: refused, unreachable, reset, timed out (EX_TEMPFAIL). `detail`
    /// says what was being done; `source`, when there is one, is the OS's error, put into
    /// words after it.
    #[error("{host}: {detail}{}", network_cause(.source))]
    Network {
        host: String,
        detail: String,
        #[source]
        source: Option<io::Error>,
    },
    /// TLS could not be established or the certificate is not trusted.
    #[error("{host}: TLS: {detail}")]
    Tls {
        host: String,
        detail: String,
        status: ExitStatus,
    },
    /// The SMTP session with `host` failed.
    #[error("{host}: {error}")]
    Session { host: String, error: SessionError },
    /// The message was delivered to some recipients and refused for others.
    #[error("{host}: {}", describe_rejected(.rejected))]
    PartialDelivery {
        host: String,
        rejected: Vec<RcptFailure>,
    },
    /// A local file or stream failed (EX_IOERR): what was being done, and the OS's error.
    #[error("{context}: {}", describe(.source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Could not create a file (EX_CANTCREAT): which, and the OS's error.
    #[error("{context}: {}", describe(.source))]
    CantCreate {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A temporary local failure (EX_TEMPFAIL), e.g. a config file this user cannot read.
    #[error("{0}")]
    TempFail(String),
    /// Permission denied (EX_NOPERM).
    #[error("{0}")]
    NoPerm(String),
    /// A permanent failure not otherwise classified (EX_UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
    /// A bug (EX_SOFTWARE).
    #[error("internal error: {0}")]
    Internal(String),
}

fn network_cause(source: &Option<io::Error>) -> String {
    source
        .as_ref()
        .map(|e| format!(": {}", describe_network(e)))
        .unwrap_or_default()
}

fn describe_rejected(rejected: &[RcptFailure]) -> String {
    let parts: Vec<String> = rejected
        .iter()
        .map(|f| format!("RCPT TO:<{}>: {}", f.recipient, f.reply))
        .collect();
    parts.join("; ")
}

impl Error {
    /// A local file or stream failed while doing `context`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// `context` (a file) could not be created.
    pub fn cant_create(context: impl Into<String>, source: io::Error) -> Error {
        Error::CantCreate {
            context: context.into(),
            source,
        }
    }

    /// A local failure that has no OS error behind it (a short write, a truncated file).
    pub fn io_text(context: impl Into<String>, what: &str) -> Error {
        Error::io(context, io::Error::other(what.to_string()))
    }

    /// The network failed while doing `detail` with `host`.
    pub fn network(host: impl Into<String>, detail: impl Into<String>, source: io::Error) -> Error {
        Error::Network {
            host: host.into(),
            detail: detail.into(),
            source: Some(source),
        }
    }

    /// A network failure that is said in words only (a DNS answer, a failure passed on).
    pub fn network_text(host: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Network {
            host: host.into(),
            detail: detail.into(),
            source: None,
        }
    }

    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Usage(_) => ExitStatus::Usage,
            Error::Data(_) => ExitStatus::DataErr,
            Error::NoInput(_) => ExitStatus::NoInput,
            Error::Config(_) => ExitStatus::Config,
            Error::NoHost { .. } => ExitStatus::NoHost,
            Error::Network { .. } => ExitStatus::TempFail,
            Error::Tls { status, .. } => *status,
            Error::Session { error, .. } => error.kind().into(),
            Error::PartialDelivery { rejected, .. } => {
                crate::smtp::error::rcpt_failures_kind(rejected).into()
            }
            Error::Io { .. } => ExitStatus::IoErr,
            Error::CantCreate { .. } => ExitStatus::CantCreat,
            Error::TempFail(_) => ExitStatus::TempFail,
            Error::NoPerm(_) => ExitStatus::NoPerm,
            Error::Unavailable(_) => ExitStatus::Unavailable,
            Error::Internal(_) => ExitStatus::Software,
        }
    }

    /// The lines for stderr: one per failure; a partial delivery lists each refused address.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Session {
                host,
                error: SessionError::NoRecipientAccepted(rejected),
            }
            | Error::PartialDelivery { host, rejected } => rejected
                .iter()
                .map(|f| format!("{host}: RCPT TO:<{}>: {}", f.recipient, f.reply))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
