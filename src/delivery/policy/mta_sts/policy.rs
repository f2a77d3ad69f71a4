//! The policy file (RFC 8461 §3.2) and what it says about one MX host (§4.1, §5).

use std::fmt;
use std::time::Duration;

use super::record::is_field_name;

/// The longest a policy may be cached: one year (§3.2).
pub const MAX_AGE_LIMIT: u32 = 31_557_600;

/// What the policy asks of senders (§5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to matching MX hosts over verified TLS; otherwise defer.
    Enforce,
    /// Deliver as without a policy; failures are reported (here: logged).
    Testing,
    /// As though the domain had no policy.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// One `mx` pattern: a host name, or `*.` and a domain, where the `*` stands for exactly
/// one label (§4.1). Kept in lower case without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxPattern {
    wildcard: bool,
    domain: String,
}

impl MxPattern {
    /// Whether `host` (an MX host name, A-labels, any case, trailing dot or not) matches.
    /// Matching is case-insensitive (§3.2).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if !self.wildcard {
            return host == self.domain;
        }
        match host.split_once('.') {
            Some((label, parent)) => !label.is_empty() && parent == self.domain,
            None => false,
        }
    }
}

impl fmt::Display for MxPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.domain)
    }
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// The allowed MX hosts; empty only in mode `none`.
    pub mx: Vec<MxPattern>,
    /// How long the policy may be cached from the time it was fetched, in seconds.
    pub max_age: u32,
}

/// What a policy requires for delivery to one MX host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxCheck {
    /// No constraint (mode `none`, or no policy): deliver as usual.
    Unconstrained,
    /// `enforce` and the host matches: deliver only over TLS whose certificate is
    /// verified for this host name (§4.2); any TLS failure defers instead.
    RequireVerifiedTls,
    /// `enforce` and the host matches no `mx` pattern: do not deliver to it (§4.1); try
    /// the next MX, and defer when none is left.
    Refused,
    /// `testing`: deliver as usual. `matches` false is a failure to log now; a TLS
    /// failure with this host (no STARTTLS, an unverified certificate) is one to log too.
    Report { matches: bool },
}

/// Why a policy file is not a policy; the policy is then not used (§3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid policy: {}", self.0)
    }
}

impl std::error::Error for PolicyError {}

impl Policy {
    /// Parse a policy file (§3.2): `key: value` lines ended by LF or CRLF; `version`,
    /// `mode` and `max_age` exactly once; `mx` at least once unless the mode is `none`;
    /// unknown keys ignored. Beyond the grammar, blank lines and white space around a line
    /// are forgiven, and a trailing dot on an `mx` name.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let bad = |why: String| Err(PolicyError(why));
        let mut version = None;
        let mut mode = None;
        let mut max_age = None;
        let mut mx = Vec::new();
        for (n, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = line.trim_matches([' ', '\t']);
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return bad(format!("line {}: no ':' in {line:?}", n + 1));
            };
            let value = value.trim_start_matches([' ', '\t']);
            let once = |seen: bool| {
                if seen {
                    Err(PolicyError(format!("line {}: {key} given twice", n + 1)))
                } else {
                    Ok(())
                }
            };
            match key {
                "version" => {
                    once(version.is_some())?;
                    if value != "STSv1" {
                        return bad(format!("version {value:?} is not STSv1"));
                    }
                    version = Some(());
                }
                "mode" => {
                    once(mode.is_some())?;
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return bad(format!("unknown mode {other:?}")),
                    });
                }
                "max_age" => {
                    once(max_age.is_some())?;
                    max_age = Some(parse_max_age(value)?);
                }
                "mx" => mx.push(parse_mx(value)?),
                other if is_field_name(other) => {}
                other => return bad(format!("line {}: bad key {other:?}", n + 1)),
            }
        }
        if version.is_none() {
            return bad("no version".into());
        }
        let Some(mode) = mode else {
            return bad("no mode".into());
        };
        let Some(max_age) = max_age else {
            return bad("no max_age".into());
        };
        if mx.is_empty() && mode != Mode::None {
            return bad(format!("mode {} without mx", mode.as_str()));
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// Whether `host` matches one of the `mx` patterns (§4.1).
    pub fn matches(&self, host: &str) -> bool {
        self.mx.iter().any(|p| p.matches(host))
    }

    /// What delivery to `host` must do under this policy (§4, §5).
    pub fn check_mx(&self, host: &str) -> MxCheck {
        match self.mode {
            Mode::None => MxCheck::Unconstrained,
            Mode::Testing => MxCheck::Report {
                matches: self.matches(host),
            },
            Mode::Enforce if self.matches(host) => MxCheck::RequireVerifiedTls,
            Mode::Enforce => MxCheck::Refused,
        }
    }

    /// For the log: `mta-sts enforce`, `mta-sts testing`, `mta-sts none`.
    pub fn label(&self) -> &'static str {
        match self.mode {
            Mode::Enforce => "mta-sts enforce",
            Mode::Testing => "mta-sts testing",
            Mode::None => "mta-sts none",
        }
    }

    pub fn max_age(&self) -> Duration {
        Duration::from_secs(u64::from(self.max_age))
    }
}

/// `1*10(DIGIT)`, at most [`MAX_AGE_LIMIT`].
fn parse_max_age(value: &str) -> Result<u32, PolicyError> {
    let bad = || {
        PolicyError(format!(
            "max_age {value:?} is not 0 to {MAX_AGE_LIMIT} seconds"
        ))
    };
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= u64::from(MAX_AGE_LIMIT))
        .map(|n| n as u32)
        .ok_or_else(bad)
}

/// `["*."] Domain` (RFC 5321 §4.1.2 `Domain`: LDH labels).
fn parse_mx(value: &str) -> Result<MxPattern, PolicyError> {
    let (wildcard, domain) = match value.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let valid_label = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(valid_label) {
        return Err(PolicyError(format!("mx {value:?} is not a host name")));
    }
    Ok(MxPattern {
        wildcard,
        domain: domain.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8461 §3.2's example, as printed (LF line ends).
    const RFC_EXAMPLE: &str = "version: STSv1\n\
mode: enforce\n\
mx: mail.example.com\n\
mx: *.example.net\n\
mx: backupmx.example.com\n\
max_age: 604800\n";

    #[test]
    fn rfc_example_policy() {
        let p = Policy::parse(RFC_EXAMPLE).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        let shown: Vec<String> = p.mx.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            shown,
            ["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
        assert_eq!(p.label(), "mta-sts enforce");
    }

    #[test]
    fn crlf_line_ends_and_no_final_line_end() {
        let crlf = RFC_EXAMPLE.replace('\n', "\r\n");
        assert_eq!(Policy::parse(&crlf), Policy::parse(RFC_EXAMPLE));
        let bare = RFC_EXAMPLE.trim_end();
        assert_eq!(Policy::parse(bare), Policy::parse(RFC_EXAMPLE));
    }

    #[test]
    fn fields_in_any_order_unknown_keys_ignored() {
        let p = Policy::parse(
            "max_age: 86400\nmx: MX.Example.ORG.\nfuture_key.v2: anything\nmode: testing\nversion: STSv1\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Testing);
        assert!(p.matches("mx.example.org"));
    }

    #[test]
    fn mode_none_needs_no_mx() {
        let p = Policy::parse("version: STSv1\nmode: none\nmax_age: 0\n").unwrap();
        assert_eq!(p.mode, Mode::None);
        assert_eq!(p.check_mx("anything.test"), MxCheck::Unconstrained);
    }

    #[test]
    fn max_age_limits() {
        let with = |age: &str| {
            Policy::parse(&format!(
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: {age}\n"
            ))
        };
        assert_eq!(with("0").unwrap().max_age, 0);
        assert_eq!(with("31557600").unwrap().max_age, MAX_AGE_LIMIT);
        assert_eq!(with("0000000001").unwrap().max_age, 1);
        for bad in ["31557601", "99999999999", "-1", "1.5", "", "1e3", " "] {
            assert!(with(bad).is_err(), "max_age {bad:?}");
        }
    }

    #[test]
    fn bad_policies_are_refused() {
        let cases = [
            ("", "no version"),
            ("mode: enforce\nmx: a.test\nmax_age: 1\n", "no version"),
            (
                "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
                "STSv1",
            ),
            (
                "version: stsv1\nmode: enforce\nmx: a.test\nmax_age: 1\n",
                "STSv1",
            ),
            ("version: STSv1\nmx: a.test\nmax_age: 1\n", "no mode"),
            (
                "version: STSv1\nmode: Enforce\nmx: a.test\nmax_age: 1\n",
                "mode",
            ),
            ("version: STSv1\nmode: enforce\nmx: a.test\n", "no max_age"),
            ("version: STSv1\nmode: enforce\nmax_age: 1\n", "without mx"),
            ("version: STSv1\nmode: testing\nmax_age: 1\n", "without mx"),
            (
                "version: STSv1\nmode: enforce\nmode: none\nmx: a.test\nmax_age: 1\n",
                "twice",
            ),
            (
                "version: STSv1\nversion: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\n",
                "twice",
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\nmax_age: 2\n",
                "twice",
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\njunk\n",
                "no ':'",
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\n-x: 1\n",
                "bad key",
            ),
            ("<html><body>Not found</body></html>", "no ':'"),
        ];
        for (text, why) in cases {
            let err = Policy::parse(text).unwrap_err();
            assert!(err.0.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn bad_mx_values_are_refused() {
        for mx in [
            "",
            "*",
            "*.",
            "**.example.com",
            "mail.*.example.com",
            "a..b",
            "-a.test",
            "a-.test",
            "a_b.test",
            "m\u{fc}ller.test",
            "mail.example.com:25",
            "127.0.0.1 x",
        ] {
            let text = format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 1\n");
            assert!(Policy::parse(&text).is_err(), "mx {mx:?}");
        }
    }

    #[test]
    fn wildcard_matches_exactly_one_leftmost_label() {
        // RFC 8461 §4.1's own example.
        let p = Policy::parse(RFC_EXAMPLE).unwrap();
        assert!(p.matches("mx1.example.net"));
        assert!(p.matches("MX1.Example.NET."));
        assert!(!p.matches("example.net"));
        assert!(!p.matches("foo.bar.example.net"));
        assert!(!p.matches(".example.net"));
        assert!(!p.matches("mx1example.net"));
        assert!(p.matches("mail.example.com"));
        assert!(!p.matches("x.mail.example.com"));
        assert!(!p.matches("mail.example.com.evil.test"));
        assert!(!p.matches("ail.example.com"));
    }

    #[test]
    fn what_each_mode_asks_of_an_mx() {
        let enforce = Policy::parse(RFC_EXAMPLE).unwrap();
        assert_eq!(
            enforce.check_mx("mail.example.com"),
            MxCheck::RequireVerifiedTls
        );
        assert_eq!(enforce.check_mx("evil.example.org"), MxCheck::Refused);
        let testing = Policy::parse(&RFC_EXAMPLE.replace("enforce", "testing")).unwrap();
        assert_eq!(
            testing.check_mx("mail.example.com"),
            MxCheck::Report { matches: true }
        );
        assert_eq!(
            testing.check_mx("evil.example.org"),
            MxCheck::Report { matches: false }
        );
        assert_eq!(testing.label(), "mta-sts testing");
    }
}
