//! How an SMTP failure is to be taken, apart from what it means to a caller.

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
    pub(super) fn rank(self) -> u8 {
        match self {
            Failure::NoSuchRecipient => 3,
            Failure::Permanent => 2,
            Failure::Transient => 1,
            _ => 0,
        }
    }
}
