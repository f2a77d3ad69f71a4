//! Why a session failed, with the exit status each failure means.

use super::failure::Failure;
use super::reply::{Reply, ReplyError};
use super::sasl::SaslError;

/// One recipient the server refused, with its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptFailure {
    pub recipient: String,
    pub reply: Reply,
}

/// A failed SMTP session, without the host name (the transport adds it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The server answered `command` with a 4xx or 5xx.
    #[error("{command}: {reply}")]
    Refused {
        command: String,
        reply: Reply,
        at_rcpt: bool,
    },
    /// Every recipient was refused, so no message was sent.
    #[error("{}", describe_rcpt_failures(.0))]
    NoRecipientAccepted(Vec<RcptFailure>),
    /// The server's bytes are not SMTP.
    #[error("{command}: {error}")]
    BadReply { command: String, error: ReplyError },
    /// The server broke the protocol in a way the parser cannot see.
    #[error("{0}")]
    Protocol(String),
    /// TLS was required but the server did not offer or complete STARTTLS.
    #[error("{0}")]
    TlsUnavailable(String),
    /// Authentication was refused; `detail` is what the server's error challenge said
    /// (XOAUTH2, OAUTHBEARER: RFC 7628 §3.2.2).
    #[error("{command}: {reply}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    AuthFailed {
        command: String,
        reply: Reply,
        detail: Option<String>,
    },
    /// The SASL exchange failed on the client's side: a server that did not prove itself
    /// (SCRAM), asked for a downgrade, or broke the mechanism.
    #[error("{command}: {error}")]
    Sasl { command: String, error: SaslError },
    /// Authentication cannot be attempted (no mechanism in common, no TLS).
    #[error("{0}")]
    AuthUnavailable(String),
    /// The message needs something the server lacks (size limit, 8BITMIME, SMTPUTF8).
    #[error("{0}")]
    Unsupported(String),
    /// The server closed the connection while a reply was awaited.
    #[error("{0}: connection closed by server")]
    Closed(String),
    /// An argument would have put CR or LF into a command.
    #[error("{0}")]
    UnsafeArgument(String),
}

fn describe_rcpt_failures(failures: &[RcptFailure]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|f| format!("RCPT TO:<{}>: {}", f.recipient, f.reply))
        .collect();
    parts.join("; ")
}

impl SessionError {
    /// Whether this is about the credentials (refused, unusable, or no way to send them):
    /// every message of the session is waiting for them, none is at fault.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            SessionError::AuthFailed { .. }
                | SessionError::AuthUnavailable(_)
                | SessionError::Sasl { .. }
        )
    }

    /// How this failure is to be taken.
    pub fn kind(&self) -> Failure {
        match self {
            SessionError::Refused { reply, at_rcpt, .. } => Failure::of_reply(reply.code, *at_rcpt),
            SessionError::NoRecipientAccepted(failures) => rcpt_failures_kind(failures),
            SessionError::BadReply { .. } | SessionError::Protocol(_) => Failure::Protocol,
            SessionError::TlsUnavailable(_) | SessionError::Closed(_) => Failure::Transient,
            SessionError::AuthFailed { reply, .. } if reply.is_transient() => Failure::Transient,
            SessionError::AuthFailed { .. } | SessionError::AuthUnavailable(_) => Failure::Auth,
            SessionError::Sasl { error, .. } => error.kind(),
            SessionError::Unsupported(_) => Failure::Permanent,
            SessionError::UnsafeArgument(_) => Failure::BadInput,
        }
    }
}

/// The failure a set of refused recipients stands for: a permanent refusal wins over a
/// transient one, since retrying cannot help that recipient.
pub fn rcpt_failures_kind(failures: &[RcptFailure]) -> Failure {
    failures
        .iter()
        .map(|f| Failure::of_reply(f.reply.code, true))
        .max_by_key(|k| k.rank())
        .unwrap_or(Failure::Protocol)
}
