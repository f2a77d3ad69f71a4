//! The `from` of an account as msmtp reads it: substitutions (`%U`, `%H`, `%C`, `%M`),
//! and the rules by which an envelope sender chooses the account (msmtp(1), "USAGE").

use std::ffi::{CStr, CString};

use crate::message::address;

/// msmtp's file with this machine's mail name.
const MAILNAME: &str = "/etc/mailname";

/// Whether a `from` is a shell pattern (it holds `*`, `?` or `[`, msmtp's test): it then
/// chooses the account for `-f`, and is not itself an address.
pub fn is_pattern(from: &str) -> bool {
    from.contains(['*', '?', '['])
}

/// Replaces msmtp's substitutions: `%U` (with `user`) the login name (`$USER`, else
/// `$LOGNAME`, else the password database), `%H` the host name (`$HOSTNAME`, else the
/// kernel's), `%C` the canonical name of `%H`, `%M` the contents of `/etc/mailname`.
/// Any other `%` is kept as written.
pub(super) fn expand(text: &str, user: bool) -> Result<String, String> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('U') if user => {
                chars.next();
                out.push_str(&login_name());
            }
            Some('H') => {
                chars.next();
                out.push_str(&host_name());
            }
            Some('C') => {
                chars.next();
                let host = host_name();
                out.push_str(&canonical_name(&host).unwrap_or(host));
            }
            Some('M') => {
                chars.next();
                out.push_str(&mail_name()?);
            }
            _ => out.push('%'),
        }
    }
    Ok(out)
}

fn login_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .unwrap_or_else(crate::system::identity::user_name)
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(crate::system::identity::host_name)
}

/// `/etc/mailname`'s first line; msmtp fails without it, and so do we.
fn mail_name() -> Result<String, String> {
    let text = std::fs::read_to_string(MAILNAME).map_err(|e| format!("%M: {MAILNAME}: {e}"))?;
    let name = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if name.is_empty() {
        return Err(format!("%M: {MAILNAME} is empty"));
    }
    Ok(name.to_string())
}

/// The canonical name of `host` (getaddrinfo's `AI_CANONNAME`), as msmtp's `%C`.
fn canonical_name(host: &str) -> Option<String> {
    let node = CString::new(host).ok()?;
    // SAFETY: addrinfo is plain old data; a zeroed hints struct asks for nothing special
    // beyond the flag set below.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut result: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: node and hints are valid for the call; result is freed below.
    let rc = unsafe { libc::getaddrinfo(node.as_ptr(), std::ptr::null(), &hints, &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success the first entry carries ai_canonname (or NULL), a NUL-terminated
    // string owned by the list, copied out before the list is freed.
    let name = unsafe {
        let canon = (*result).ai_canonname;
        let name = (!canon.is_null()).then(|| CStr::from_ptr(canon).to_string_lossy().into_owned());
        libc::freeaddrinfo(result);
        name
    };
    name.filter(|n| !n.is_empty())
}

/// The first of `accounts` (name, `from`) whose `from` matches `sender`: a pattern with
/// fnmatch(3) (msmtp's flags: none, so case counts and `*` crosses `.` and `@`), an address
/// without regard to case; and when the sender is `user+detail@domain` and the `from`
/// has no `+`, the sender without its `+detail`.
pub(super) fn match_account<'a>(
    accounts: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    sender: &str,
) -> Option<&'a str> {
    let sender = match address::envelope_address(sender) {
        Ok(addr) => addr,
        Err(_) => sender.trim().to_string(),
    };
    if sender.is_empty() || address::is_null_sender(&sender) {
        return None;
    }
    let without_detail = strip_detail(&sender);
    for (name, from) in accounts {
        if matches(&sender, from) {
            return Some(name);
        }
        if let Some(plain) = &without_detail
            && !from.contains('+')
            && matches(plain, from)
        {
            return Some(name);
        }
    }
    None
}

/// `user+detail@domain` as `user@domain`; `None` without a `+` before the `@`.
fn strip_detail(sender: &str) -> Option<String> {
    let at = sender.find('@')?;
    let plus = sender[..at].find('+')?;
    Some(format!("{}{}", &sender[..plus], &sender[at..]))
}

fn matches(sender: &str, from: &str) -> bool {
    if is_pattern(from) {
        fnmatch(from, sender)
    } else {
        sender.eq_ignore_ascii_case(from)
    }
}

/// The C library's fnmatch(3) with no flags: the very rules msmtp applies.
fn fnmatch(pattern: &str, text: &str) -> bool {
    let (Ok(pattern), Ok(text)) = (CString::new(pattern), CString::new(text)) else {
        return false;
    };
    // SAFETY: both are NUL-terminated strings that outlive the call.
    unsafe { libc::fnmatch(pattern.as_ptr(), text.as_ptr(), 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen<'a>(accounts: &'a [(&'a str, &'a str)], sender: &str) -> Option<&'a str> {
        match_account(accounts.iter().copied(), sender)
    }

    const ACCOUNTS: &[(&str, &str)] = &[
        ("work", "me@work.example"),
        ("lists", "*@lists.example"),
        ("any-home", "me-?@home.example"),
        ("class", "[ab]*@class.example"),
        ("detail", "me+tag@detail.example"),
        ("fallback", "*"),
    ];

    #[test]
    fn plain_from_matches_without_regard_to_case() {
        assert_eq!(chosen(ACCOUNTS, "ME@Work.Example"), Some("work"));
        assert_eq!(chosen(ACCOUNTS, "<me@work.example>"), Some("work"));
    }

    #[test]
    fn patterns_match_as_fnmatch_does() {
        assert_eq!(chosen(ACCOUNTS, "anything@lists.example"), Some("lists"));
        assert_eq!(chosen(ACCOUNTS, "me-1@home.example"), Some("any-home"));
        assert_eq!(chosen(ACCOUNTS, "me-12@home.example"), Some("fallback"));
        assert_eq!(chosen(ACCOUNTS, "bob@class.example"), Some("class"));
        assert_eq!(chosen(ACCOUNTS, "carol@class.example"), Some("fallback"));
        // No flags: case counts in a pattern.
        assert_eq!(chosen(ACCOUNTS, "x@LISTS.example"), Some("fallback"));
    }

    #[test]
    fn the_first_match_in_file_order_wins() {
        let accounts = [("a", "*@example.org"), ("b", "me@example.org")];
        assert_eq!(chosen(&accounts, "me@example.org"), Some("a"));
    }

    #[test]
    fn subaddress_matches_the_account_without_detail() {
        assert_eq!(chosen(ACCOUNTS, "me+news@work.example"), Some("work"));
        // A from with a + is compared as written.
        assert_eq!(chosen(ACCOUNTS, "me+tag@detail.example"), Some("detail"));
        let only_detail = [("detail", "me+tag@detail.example")];
        assert_eq!(chosen(&only_detail, "me+other@detail.example"), None);
        assert_eq!(chosen(&only_detail, "me@detail.example"), None);
    }

    #[test]
    fn no_match_and_null_sender_choose_nothing() {
        let accounts = [("work", "me@work.example")];
        assert_eq!(chosen(&accounts, "you@work.example"), None);
        assert_eq!(chosen(&accounts, "<>"), None);
        assert_eq!(chosen(&accounts, ""), None);
    }

    #[test]
    fn substitutions_are_replaced_and_other_percents_kept() {
        let user = login_name();
        assert_eq!(
            expand("%U@example.org", true).unwrap(),
            format!("{user}@example.org")
        );
        assert_eq!(expand("%U@example.org", false).unwrap(), "%U@example.org");
        assert_eq!(expand("a%b@%%.x", true).unwrap(), "a%b@%%.x");
        assert_eq!(expand("x@%H", false).unwrap(), format!("x@{}", host_name()));
        assert!(!expand("%C", false).unwrap().is_empty());
        assert_eq!(
            expand("plain@example.org", true).unwrap(),
            "plain@example.org"
        );
    }

    #[test]
    fn patterns_are_recognised() {
        assert!(is_pattern("*@example.org"));
        assert!(is_pattern("me?@example.org"));
        assert!(is_pattern("[ab]@example.org"));
        assert!(!is_pattern("me@example.org"));
    }
}
