//! `smtpsend oauth login|status [--config FILE] [ACCOUNT]`.
//!
//! Recipients are positional, so clap cannot have subcommands; `main` hands over when
//! the first argument is `oauth` and the program was not called as `sendmail`, where
//! `sendmail oauth` must still mail the local user "oauth".

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{self, Account};
use crate::oauth::{Context, OAuthError, Store, TokenSource};
use crate::{Error, ExitStatus};

const USAGE: &str = "usage: smtpsend oauth login [--config FILE] [ACCOUNT]\n       \
                     smtpsend oauth status [--config FILE] [ACCOUNT]\n\n\
login   sign in with the account's oauth_provider (RFC 8628 device flow) and store the tokens\n\
status  say whether tokens are stored and when the access token expires (never the tokens)";

/// True for `smtpsend oauth ...`, but not for `sendmail oauth` (a recipient).
pub fn is_invocation(args: &[OsString]) -> bool {
    let called_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("smtpsend");
    let sendmail_names = ["sendmail", "mailq", "newaliases"];
    args.get(1).is_some_and(|a| a == "oauth") && !sendmail_names.contains(&called_as)
}

#[derive(Debug, PartialEq, Eq)]
enum Action {
    Login,
    Status,
    Help,
}

#[derive(Debug, PartialEq, Eq)]
struct Request {
    action: Action,
    config: Option<PathBuf>,
    account: Option<String>,
}

fn parse(args: &[OsString]) -> Result<Request, Error> {
    let usage = |msg: String| Error::Usage(format!("oauth: {msg}\n{USAGE}"));
    let mut words = args.iter().map(|a| {
        a.to_str()
            .map(str::to_string)
            .ok_or_else(|| usage(format!("{a:?} is not UTF-8")))
    });
    let action = match words.next().transpose()?.as_deref() {
        Some("login") => Action::Login,
        Some("status") => Action::Status,
        Some("-h" | "--help" | "help") => Action::Help,
        Some(other) => return Err(usage(format!("unknown command {other:?}"))),
        None => return Err(usage("a command is needed".into())),
    };
    let mut request = Request {
        action,
        config: None,
        account: None,
    };
    while let Some(word) = words.next().transpose()? {
        match word.as_str() {
            "-h" | "--help" => request.action = Action::Help,
            "--config" | "-C" => {
                let path = words
                    .next()
                    .transpose()?
                    .ok_or_else(|| usage("--config needs a FILE".into()))?;
                request.config = Some(PathBuf::from(path));
            }
            "-a" | "--account" => {
                let name = words
                    .next()
                    .transpose()?
                    .ok_or_else(|| usage(format!("{word} needs a NAME")))?;
                set_account(&mut request, name).map_err(usage)?;
            }
            _ if word.starts_with("--config=") => {
                request.config = Some(PathBuf::from(&word["--config=".len()..]));
            }
            _ if word.starts_with('-') => return Err(usage(format!("unknown option {word}"))),
            _ => set_account(&mut request, word).map_err(usage)?,
        }
    }
    Ok(request)
}

fn set_account(request: &mut Request, name: String) -> Result<(), String> {
    if request.account.is_some() {
        return Err("name one account".into());
    }
    request.account = Some(name);
    Ok(())
}

/// Runs `smtpsend oauth ARGS` (the words after `oauth`): help goes to `out`, the
/// sign-in instructions and the outcome to `err`.
pub fn run(
    args: &[OsString],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let request = parse(args)?;
    if request.action == Action::Help {
        let _ = writeln!(out, "{USAGE}");
        return Ok(ExitStatus::Ok);
    }
    let config = config::load(request.config.as_deref())?.ok_or_else(|| {
        Error::Config(
            "no config file: oauth login needs an account with oauth_provider \
             (see the OAUTH section of smtpsend(1))"
                .into(),
        )
    })?;
    let account = config.account(request.account.as_deref())?;
    match request.action {
        Action::Login => {
            let path = crate::oauth::login(&account, err)?;
            let _ = writeln!(
                err,
                "smtpsend: account {}: signed in; tokens stored in {}",
                account.name,
                path.display()
            );
        }
        Action::Status => {
            let _ = writeln!(err, "smtpsend: {}", status(&account)?);
        }
        Action::Help => {}
    }
    Ok(ExitStatus::Ok)
}

/// One line about the account's tokens; never a token.
fn status(account: &Account) -> Result<String, OAuthError> {
    let name = &account.name;
    match &account.oauth {
        None => Ok(format!("account {name}: no OAuth settings")),
        Some(TokenSource::Command(cmd)) => Ok(format!(
            "account {name}: the token comes from oauth_token_command `{cmd}`"
        )),
        Some(TokenSource::File(path)) => Ok(format!(
            "account {name}: the token comes from oauth_token_file {}",
            path.display()
        )),
        Some(TokenSource::Provider(p)) => {
            let ctx = Context::for_account(account)?;
            let store = Store::new(&ctx.store_dir, name);
            let Some(token) = store.load()? else {
                return Ok(format!(
                    "account {name} ({}): not signed in; {}",
                    p.kind.name(),
                    OAuthError::login_hint(name)
                ));
            };
            let now = ctx.clock.now().as_secs();
            let expiry = if token.expires_at > now {
                format!("expires in {} min", (token.expires_at - now).div_ceil(60))
            } else {
                format!("expired {} min ago", (now - token.expires_at) / 60)
            };
            let refresh = if token.refresh_token.is_some() {
                "a refresh token is stored"
            } else {
                "no refresh token"
            };
            Ok(format!(
                "account {name} ({}): access token {expiry}; {refresh} ({})",
                p.kind.name(),
                store.path().display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_smtpsend_oauth_is_the_subcommand() {
        assert!(is_invocation(&args(&["smtpsend", "oauth", "login"])));
        assert!(is_invocation(&args(&["/usr/bin/smtpsend", "oauth"])));
        assert!(!is_invocation(&args(&["sendmail", "oauth"])));
        assert!(!is_invocation(&args(&[
            "/usr/sbin/sendmail",
            "oauth",
            "login"
        ])));
        assert!(!is_invocation(&args(&["smtpsend", "-t", "oauth"])));
        assert!(!is_invocation(&args(&["smtpsend"])));
    }

    #[test]
    fn arguments() {
        let r = parse(&args(&["login", "--config", "/c.toml", "work"])).unwrap();
        assert_eq!(
            r,
            Request {
                action: Action::Login,
                config: Some("/c.toml".into()),
                account: Some("work".into()),
            }
        );
        let r = parse(&args(&["status", "--config=/c", "-a", "home"])).unwrap();
        assert_eq!(r.action, Action::Status);
        assert_eq!(r.config, Some("/c".into()));
        assert_eq!(r.account.as_deref(), Some("home"));
        assert_eq!(parse(&args(&["login"])).unwrap().account, None);
        assert_eq!(
            parse(&args(&["login", "--help"])).unwrap().action,
            Action::Help
        );
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            &["logout"][..],
            &[],
            &["login", "a", "b"],
            &["login", "--config"],
            &["login", "--bogus"],
        ] {
            let err = parse(&args(bad)).unwrap_err();
            assert_eq!(err.exit_status(), ExitStatus::Usage, "{bad:?}");
            assert!(err.to_string().contains("usage: smtpsend oauth"), "{err}");
        }
    }
}
