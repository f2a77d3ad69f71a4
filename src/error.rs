//! The library's error type: every failure knows its sysexits status and keeps the
//! server's words, so `main` can print one line and exit with the right code.

use crate::exit::ExitStatus;
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
    /// The network failed: refused, unreachable, reset, timed out (EX_TEMPFAIL).
    #[error("{host}: {detail}")]
    Network { host: String, detail: String },
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
    #[error("{host}: {}", describe(.rejected))]
    PartialDelivery {
        host: String,
        rejected: Vec<RcptFailure>,
    },
    /// A local file or stream failed (EX_IOERR).
    #[error("{0}")]
    Io(String),
    /// Could not create a file (EX_CANTCREAT).
    #[error("{0}")]
    CantCreate(String),
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

fn describe(rejected: &[RcptFailure]) -> String {
    let parts: Vec<String> = rejected
        .iter()
        .map(|f| format!("RCPT TO:<{}>: {}", f.recipient, f.reply))
        .collect();
    parts.join("; ")
}

impl Error {
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
            Error::Io(_) => ExitStatus::IoErr,
            Error::CantCreate(_) => ExitStatus::CantCreat,
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
