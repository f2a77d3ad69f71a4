//! The one place that puts an operating system error into words for a person: the OS's own
//! words without Rust's ` (os error 13)` suffix for local files, and a peer's behaviour in
//! plain words ("connection refused", "timed out") for the network.

use std::io;

/// A copy of a borrowed error for an error's source: the same kind and OS error code, or
/// the same words when it has no code.
pub fn owned(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// The OS's words for `e`: `Permission denied`, `No space left on device`.
pub fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// What a network error says about the peer: "connection refused", "timed out",
/// "connection reset by server"; other errors in the OS's words.
pub fn describe_network(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by server".into(),
        io::ErrorKind::UnexpectedEof => "connection closed by server".into(),
        io::ErrorKind::BrokenPipe => "connection closed by server (broken pipe)".into(),
        _ => describe(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_words_lose_the_error_number() {
        let e = io::Error::from_raw_os_error(13);
        assert_eq!(describe(&e), "Permission denied");
        assert_eq!(describe(&io::Error::other("disk on fire")), "disk on fire");
    }

    #[test]
    fn network_errors_name_what_the_peer_did() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_network(&refused), "connection refused");
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(describe_network(&reset), "connection reset by server");
        assert_eq!(
            describe_network(&io::Error::from_raw_os_error(101)),
            "Network is unreachable"
        );
    }
}
