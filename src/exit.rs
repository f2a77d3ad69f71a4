//! Exit statuses from `<sysexits.h>`, the contract between a sendmail and its caller.
//! The SMTP core only classifies its failures ([`Failure`]); the mapping is here.
//!
//! Callers such as cron, mutt and PHP only look at the status, so every outcome maps to
//! exactly one of these; `EX_TEMPFAIL` in particular tells a caller to try again later.

use crate::smtp::{Failure, SessionError};

/// A sysexits status.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The message was accepted for every recipient.
    Ok,
    /// EX_USAGE: the command line was wrong.
    Usage,
    /// EX_DATAERR: the message or an address in it is malformed.
    DataErr,
    /// EX_NOINPUT: an input file is missing or unreadable.
    NoInput,
    /// EX_NOUSER: a recipient was rejected (550/551/553 at RCPT).
    NoUser,
    /// EX_NOHOST: the host name does not exist.
    NoHost,
    /// EX_UNAVAILABLE: a permanent failure other than a rejected recipient.
    Unavailable,
    /// EX_SOFTWARE: a bug in smtpsend.
    Software,
    /// EX_OSERR: the operating system refused something (fork, memory).
    OsErr,
    /// EX_CANTCREAT: a file could not be created.
    CantCreat,
    /// EX_IOERR: reading or writing a local file failed.
    IoErr,
    /// EX_TEMPFAIL: try again later (4xx, network faults, timeouts).
    TempFail,
    /// EX_PROTOCOL: the server broke the protocol.
    Protocol,
    /// EX_NOPERM: authentication failed or is not permitted.
    NoPerm,
    /// EX_CONFIG: the configuration is wrong.
    Config,
}

impl ExitStatus {
    /// The numeric value from `<sysexits.h>`.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::Usage => 64,
            ExitStatus::DataErr => 65,
            ExitStatus::NoInput => 66,
            ExitStatus::NoUser => 67,
            ExitStatus::NoHost => 68,
            ExitStatus::Unavailable => 69,
            ExitStatus::Software => 70,
            ExitStatus::OsErr => 71,
            ExitStatus::CantCreat => 73,
            ExitStatus::IoErr => 74,
            ExitStatus::TempFail => 75,
            ExitStatus::Protocol => 76,
            ExitStatus::NoPerm => 77,
            ExitStatus::Config => 78,
        }
    }

    /// The symbolic name, as in `<sysexits.h>`.
    pub fn name(self) -> &'static str {
        match self {
            ExitStatus::Ok => "EX_OK",
            ExitStatus::Usage => "EX_USAGE",
            ExitStatus::DataErr => "EX_DATAERR",
            ExitStatus::NoInput => "EX_NOINPUT",
            ExitStatus::NoUser => "EX_NOUSER",
            ExitStatus::NoHost => "EX_NOHOST",
            ExitStatus::Unavailable => "EX_UNAVAILABLE",
            ExitStatus::Software => "EX_SOFTWARE",
            ExitStatus::OsErr => "EX_OSERR",
            ExitStatus::CantCreat => "EX_CANTCREAT",
            ExitStatus::IoErr => "EX_IOERR",
            ExitStatus::TempFail => "EX_TEMPFAIL",
            ExitStatus::Protocol => "EX_PROTOCOL",
            ExitStatus::NoPerm => "EX_NOPERM",
            ExitStatus::Config => "EX_CONFIG",
        }
    }

    /// The status for a server reply that refused `command`, by RFC 5321 §4.2.1 reply class.
    ///
    /// A 5xx at RCPT that names the mailbox (550, 551, 553) means the recipient does not
    /// exist, which sysexits calls `EX_NOUSER`; every other permanent refusal is
    /// `EX_UNAVAILABLE`. All 4xx replies are temporary.
    pub fn for_reply(code: u16, at_rcpt: bool) -> ExitStatus {
        Failure::of_reply(code, at_rcpt).into()
    }
}

/// The sysexits status a kind of SMTP failure means to a sendmail caller.
impl From<Failure> for ExitStatus {
    fn from(failure: Failure) -> ExitStatus {
        match failure {
            Failure::Transient => ExitStatus::TempFail,
            Failure::NoSuchRecipient => ExitStatus::NoUser,
            Failure::Permanent => ExitStatus::Unavailable,
            Failure::Protocol => ExitStatus::Protocol,
            Failure::Auth => ExitStatus::NoPerm,
            Failure::BadInput => ExitStatus::DataErr,
        }
    }
}

/// What a session's failure means to the caller.
impl From<&SessionError> for ExitStatus {
    fn from(error: &SessionError) -> ExitStatus {
        error.kind().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_classes_map_to_sysexits() {
        assert_eq!(ExitStatus::for_reply(421, false), ExitStatus::TempFail);
        assert_eq!(ExitStatus::for_reply(452, true), ExitStatus::TempFail);
        assert_eq!(ExitStatus::for_reply(550, true), ExitStatus::NoUser);
        assert_eq!(ExitStatus::for_reply(551, true), ExitStatus::NoUser);
        assert_eq!(ExitStatus::for_reply(553, true), ExitStatus::NoUser);
        assert_eq!(ExitStatus::for_reply(550, false), ExitStatus::Unavailable);
        assert_eq!(ExitStatus::for_reply(552, true), ExitStatus::Unavailable);
        assert_eq!(ExitStatus::for_reply(554, false), ExitStatus::Unavailable);
        assert_eq!(ExitStatus::for_reply(250, false), ExitStatus::Protocol);
    }

    #[test]
    fn codes_match_sysexits_h() {
        assert_eq!(ExitStatus::Usage.code(), 64);
        assert_eq!(ExitStatus::TempFail.code(), 75);
        assert_eq!(ExitStatus::Config.code(), 78);
    }
}
