//! Why a session failed, with the exit status each failure means.

use super::reply::{Reply, ReplyError};
use super::sasl::SaslError;

/// How a failure is to be taken, without saying what it means to a caller: the
/// application maps it to an exit status or a queue decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// Try again later: a 4xx, a closed connection, TLS not available.
    Transient,
    /// A recipient refused for good: 550, 551 or 553 at RCPT (RFC 5321 §4.2.2).
    NoSuchRecipient,
    /// Refused for good: any other 5xx, or something the server lacks for this message.
    Permanent,
    /// The server broke the protocol.
    Protocol,
    /// Authentication was refused or could not be attempted.
    Auth,
    /// The message cannot be sent as it is (CR or LF in an argument).
    BadInput,
}

impl Failure {
    /// What a reply code means: 4xx transient, 5xx permanent, and at RCPT 550/551/553 a
    /// recipient that does not exist; anything else is not a failure code at all.
    pub fn of_reply(code: u16, at_rcpt: bool) -> Failure {
        match code {
            400..=499 => Failure::Transient,
            550 | 551 | 553 if at_rcpt => Failure::NoSuchRecipient,
            500..=599 => Failure::Permanent,
            _ => Failure::Protocol,
        }
    }

    /// Which of two failures speaks for both: a refusal for good outranks a refusal for
    /// now, since retrying cannot help.
    fn rank(self) -> u8 {
        match self {
            Failure::NoSuchRecipient => 3,
            Failure::Permanent => 2,
            Failure::Transient => 1,
            _ => 0,
        }
    }
}

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
