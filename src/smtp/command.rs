//! The command encoder (RFC 5321 §4.1). Every argument is checked once more here, so that no
//! CR, LF or NUL from any input can end a command early and start another on the wire.

use std::fmt;

/// A client command.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    StartTls,
    /// `AUTH mechanism [initial-response]`; the response is already base64.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// A line answering a `334` challenge, already base64.
    AuthResponse(String),
    Mail {
        from: String,
        params: Vec<String>,
    },
    Rcpt {
        to: String,
        params: Vec<String>,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help(Option<String>),
    Etrn(String),
}

/// An argument that would break the command line it is put into.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refusing to send {0:?}: it contains CR, LF or NUL")]
pub struct UnsafeArgument(pub String);

fn check(arg: &str) -> Result<&str, UnsafeArgument> {
    if arg.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        Err(UnsafeArgument(arg.escape_debug().to_string()))
    } else {
        Ok(arg)
    }
}

impl Command {
    /// Append the command and its CRLF to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), UnsafeArgument> {
        let start = out.len();
        let result = self.write_line(out, false);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write_line(&self, out: &mut Vec<u8>, redact: bool) -> Result<(), UnsafeArgument> {
        let mut put = |s: &str| -> Result<(), UnsafeArgument> {
            out.extend_from_slice(check(s)?.as_bytes());
            Ok(())
        };
        match self {
            Command::Ehlo(name) => {
                put("EHLO ")?;
                put(name)?;
            }
            Command::Helo(name) => {
                put("HELO ")?;
                put(name)?;
            }
            Command::StartTls => put("STARTTLS")?,
            Command::Auth { mechanism, initial } => {
                put("AUTH ")?;
                put(mechanism)?;
                if let Some(ir) = initial {
                    put(" ")?;
                    // RFC 4954 §4: an empty initial response is sent as "=".
                    put(if redact {
                        "<redacted>"
                    } else if ir.is_empty() {
                        "="
                    } else {
                        ir
                    })?;
                }
            }
            // "*" cancels an exchange (RFC 4954 §4) and carries no secret.
            Command::AuthResponse(line) => put(if redact && line != "*" {
                "<redacted>"
            } else {
                line
            })?,
            Command::Mail { from, params } => {
                put("MAIL FROM:<")?;
                put(from)?;
                put(">")?;
                for p in params {
                    put(" ")?;
                    put(p)?;
                }
            }
            Command::Rcpt { to, params } => {
                put("RCPT TO:<")?;
                put(to)?;
                put(">")?;
                for p in params {
                    put(" ")?;
                    put(p)?;
                }
            }
            Command::Data => put("DATA")?,
            Command::Rset => put("RSET")?,
            Command::Noop => put("NOOP")?,
            Command::Quit => put("QUIT")?,
            Command::Vrfy(s) => {
                put("VRFY ")?;
                put(s)?;
            }
            Command::Expn(s) => {
                put("EXPN ")?;
                put(s)?;
            }
            Command::Help(topic) => {
                put("HELP")?;
                if let Some(t) = topic {
                    put(" ")?;
                    put(t)?;
                }
            }
            Command::Etrn(s) => {
                put("ETRN ")?;
                put(s)?;
            }
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// The command as shown in a trace or an error message: secrets replaced.
    pub fn redacted(&self) -> String {
        let mut out = Vec::new();
        if self.write_line(&mut out, true).is_err() {
            return "<unsafe command>".into();
        }
        out.truncate(out.len() - 2);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(c: Command) -> String {
        let mut out = vec![];
        c.encode(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn commands_encode_as_rfc5321_shows() {
        assert_eq!(
            wire(Command::Ehlo("client.example".into())),
            "EHLO client.example\r\n"
        );
        assert_eq!(
            wire(Command::Mail {
                from: "a@b.example".into(),
                params: vec!["SIZE=42".into(), "BODY=8BITMIME".into()]
            }),
            "MAIL FROM:<a@b.example> SIZE=42 BODY=8BITMIME\r\n"
        );
        assert_eq!(
            wire(Command::Mail {
                from: String::new(),
                params: vec![]
            }),
            "MAIL FROM:<>\r\n"
        );
        assert_eq!(
            wire(Command::Rcpt {
                to: "c@d.example".into(),
                params: vec![]
            }),
            "RCPT TO:<c@d.example>\r\n"
        );
        assert_eq!(wire(Command::Data), "DATA\r\n");
        assert_eq!(wire(Command::Help(None)), "HELP\r\n");
        assert_eq!(wire(Command::Help(Some("DATA".into()))), "HELP DATA\r\n");
    }

    #[test]
    fn crlf_in_any_argument_is_refused() {
        let injected = "a@b.example>\r\nRCPT TO:<evil@x.example".to_string();
        let mut out = b"keep".to_vec();
        let err = Command::Mail {
            from: injected,
            params: vec![],
        }
        .encode(&mut out)
        .unwrap_err();
        assert!(err.0.contains("\\r\\n"));
        assert_eq!(out, b"keep", "nothing of a refused command is left behind");
        for bad in ["x\ry", "x\ny", "x\0y"] {
            assert!(Command::Ehlo(bad.into()).encode(&mut vec![]).is_err());
            assert!(Command::Vrfy(bad.into()).encode(&mut vec![]).is_err());
        }
    }

    #[test]
    fn auth_secrets_are_redacted() {
        let c = Command::Auth {
            mechanism: "PLAIN".into(),
            initial: Some("AGJvYgBzZWNyZXQ=".into()),
        };
        assert_eq!(c.redacted(), "AUTH PLAIN <redacted>");
        assert_eq!(format!("{c:?}"), "AUTH PLAIN <redacted>");
        assert_eq!(
            Command::AuthResponse("c2VjcmV0".into()).redacted(),
            "<redacted>"
        );
        assert_eq!(wire(c), "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n");
    }

    #[test]
    fn empty_initial_response_is_an_equals_sign() {
        let c = Command::Auth {
            mechanism: "PLAIN".into(),
            initial: Some(String::new()),
        };
        assert_eq!(wire(c), "AUTH PLAIN =\r\n");
    }
}
