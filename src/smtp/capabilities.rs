//! The service extensions a server announces in its EHLO reply (RFC 5321 §4.1.1.1).

use super::reply::Reply;

/// What the server offers. Built fresh from every EHLO reply; after STARTTLS the old value
/// is dropped whole (RFC 3207 §4.2), never merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 1870: `Some(0)` means no fixed limit, `Some(n)` a limit of n octets.
    pub size: Option<u64>,
    /// RFC 6152.
    pub eightbitmime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 3461.
    pub dsn: bool,
    /// RFC 4954: mechanism names, upper-cased.
    pub auth: Vec<String>,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 2034.
    pub enhancedstatuscodes: bool,
    /// RFC 3030.
    pub chunking: bool,
    /// RFC 3030 BINARYMIME.
    pub binarymime: bool,
}

impl Capabilities {
    /// Parse the lines of a 250 reply to EHLO; the first line is the server's greeting name.
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            // Some old servers wrote `AUTH=LOGIN PLAIN` for pre-standard clients.
            let (keyword, first_param) = match keyword.split_once('=') {
                Some((k, p)) => (k, Some(p)),
                None => (keyword, None),
            };
            let params = first_param.into_iter().chain(words);
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => {
                    caps.size = Some(
                        params
                            .into_iter()
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                    )
                }
                "8BITMIME" => caps.eightbitmime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "DSN" => caps.dsn = true,
                "STARTTLS" => caps.starttls = true,
                "ENHANCEDSTATUSCODES" => caps.enhancedstatuscodes = true,
                "CHUNKING" => caps.chunking = true,
                "BINARYMIME" => caps.binarymime = true,
                "AUTH" => {
                    for mech in params {
                        let mech = mech.to_ascii_uppercase();
                        if !mech.is_empty() && !caps.auth.contains(&mech) {
                            caps.auth.push(mech);
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }

    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ehlo(lines: &[&str]) -> Capabilities {
        Capabilities::from_ehlo(&Reply {
            code: 250,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn postfix_style_ehlo() {
        let c = ehlo(&[
            "mail.example.org",
            "PIPELINING",
            "SIZE 10240000",
            "VRFY",
            "ETRN",
            "STARTTLS",
            "AUTH PLAIN LOGIN",
            "AUTH=PLAIN LOGIN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ]);
        assert!(c.pipelining && c.starttls && c.enhancedstatuscodes && c.eightbitmime);
        assert!(c.dsn && c.smtputf8 && c.chunking);
        assert_eq!(c.size, Some(10_240_000));
        assert_eq!(c.auth, vec!["PLAIN", "LOGIN"]);
    }

    #[test]
    fn size_without_limit() {
        assert_eq!(ehlo(&["x", "SIZE"]).size, Some(0));
        assert_eq!(ehlo(&["x"]).size, None);
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let c = ehlo(&["x", "pipelining", "auth cram-md5 plain", "StartTLS"]);
        assert!(c.pipelining && c.starttls);
        assert!(c.offers_auth("PLAIN") && c.offers_auth("cram-md5"));
    }

    #[test]
    fn greeting_line_is_not_a_keyword() {
        assert!(!ehlo(&["STARTTLS"]).starttls);
    }
}
