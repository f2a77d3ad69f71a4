//! `smtpsend config import [FILE]`: an msmtprc as the equivalent smtpsend TOML, on
//! standard output, for a user moving over for good. `smtpsend config accounts`: the
//! names of the accounts of the config smtpsend reads (TOML or msmtprc), one a line, which
//! the shell completions offer for `-a`.
//!
//! Recipients are positional, so clap cannot have subcommands; `main` hands over when the
//! first argument is `config` and the program was not called as `sendmail`, where
//! `sendmail config` must still mail the local user "config".

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{self, ConfigKind};
use crate::system::private::open_failure;
use crate::{Error, ExitStatus};

const USAGE: &str = "usage: smtpsend config import [FILE]\n       \
smtpsend config accounts [--config FILE]\n\n\
import    print an msmtprc as smtpsend TOML (FILE defaults to the msmtprc msmtp would read:\n          \
~/.msmtprc, $XDG_CONFIG_HOME/msmtp/config, /etc/msmtprc); save it as\n          \
~/.config/smtpsend/config.toml\n\
accounts  list the account names of the config smtpsend reads (or FILE), one a line";

/// True for `smtpsend config ...`, but not for `sendmail config` (a recipient).
pub fn is_invocation(args: &[OsString]) -> bool {
    let called_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("smtpsend");
    let sendmail_names = ["sendmail", "mailq", "newaliases"];
    args.get(1).is_some_and(|a| a == "config") && !sendmail_names.contains(&called_as)
}

#[derive(Debug, PartialEq, Eq)]
enum Request {
    Import(Option<PathBuf>),
    /// The account names of this config file, or of the one smtpsend would read.
    Accounts(Option<PathBuf>),
    Help,
}

fn parse(args: &[OsString]) -> Result<Request, Error> {
    let usage = |msg: String| Error::Usage(format!("config: {msg}\n{USAGE}"));
    let words: Vec<&str> = args
        .iter()
        .map(|a| {
            a.to_str()
                .ok_or_else(|| usage(format!("{a:?} is not UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    match words.as_slice() {
        [] => Err(usage("a command is needed".into())),
        ["-h" | "--help" | "help", ..] | ["import", "-h" | "--help"] => Ok(Request::Help),
        ["import"] => Ok(Request::Import(None)),
        ["import", file] if !file.starts_with('-') || *file == "-" => {
            Ok(Request::Import(Some(PathBuf::from(file))))
        }
        ["import", option] if option.starts_with('-') => {
            Err(usage(format!("unknown option {option}")))
        }
        ["import", ..] => Err(usage("import takes one FILE".into())),
        ["accounts"] => Ok(Request::Accounts(None)),
        ["accounts", "--config", file] => Ok(Request::Accounts(Some(PathBuf::from(file)))),
        ["accounts", ..] => Err(usage("accounts takes only --config FILE".into())),
        [other, ..] => Err(usage(format!("unknown command {other:?}"))),
    }
}

/// Runs `smtpsend config ARGS` (the words after `config`): the TOML or the help go to
/// `out`.
pub fn run(
    args: &[OsString],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let file = match parse(args)? {
        Request::Help => {
            let _ = writeln!(out, "{USAGE}");
            return Ok(ExitStatus::Ok);
        }
        Request::Accounts(file) => return accounts(file.as_deref(), out),
        Request::Import(Some(file)) => file,
        Request::Import(None) => config::msmtprc_path().ok_or_else(|| {
            Error::Config(format!(
                "config import: no msmtprc found (~/.msmtprc, $XDG_CONFIG_HOME/msmtp/config, \
                 {}); name the file",
                config::SYSTEM_MSMTPRC
            ))
        })?,
    };
    // Relative names in the msmtprc are made absolute against its directory.
    let file = std::path::absolute(&file).unwrap_or(file);
    let text = std::fs::read_to_string(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => {
            Error::Config(format!("{}: not UTF-8 text", file.display()))
        }
        _ => open_failure(&file, &e),
    })?;
    if ConfigKind::detect(&text) != ConfigKind::Msmtprc {
        return Err(Error::Usage(format!(
            "{}: not an msmtprc (it reads as smtpsend TOML already)",
            file.display()
        )));
    }
    let toml = config::msmtprc::import(&text, &file)?;
    out.write_all(toml.as_bytes())
        .map_err(|e| Error::io("writing the TOML", e))?;
    if toml.contains("\npassword = ") {
        let _ = writeln!(
            err,
            "smtpsend: note: the TOML holds a password from {}; keep it private (chmod 600)",
            file.display()
        );
    }
    Ok(ExitStatus::Ok)
}

/// One account name a line, in the order of the file; nothing without a config.
fn accounts(file: Option<&Path>, out: &mut dyn Write) -> Result<ExitStatus, Error> {
    let Some(config) = config::load(file)? else {
        return Ok(ExitStatus::Ok);
    };
    for name in config.account_names() {
        writeln!(out, "{name}").map_err(|e| Error::io("writing the account names", e))?;
    }
    Ok(ExitStatus::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn config_is_a_command_for_smtpsend_but_a_recipient_for_sendmail() {
        assert!(is_invocation(&args(&["smtpsend", "config", "import"])));
        assert!(is_invocation(&args(&["/usr/bin/smtpsend", "config"])));
        assert!(!is_invocation(&args(&["/usr/sbin/sendmail", "config"])));
        assert!(!is_invocation(&args(&["smtpsend", "bob@example.org"])));
    }

    #[test]
    fn import_takes_an_optional_file() {
        assert_eq!(parse(&args(&["import"])).unwrap(), Request::Import(None));
        assert_eq!(
            parse(&args(&["import", "/tmp/rc"])).unwrap(),
            Request::Import(Some("/tmp/rc".into()))
        );
        assert_eq!(parse(&args(&["--help"])).unwrap(), Request::Help);
        assert_eq!(
            parse(&args(&["accounts", "--config", "/tmp/c"])).unwrap(),
            Request::Accounts(Some("/tmp/c".into()))
        );
        for bad in [
            &["import", "a", "b"][..],
            &["export"],
            &[],
            &["import", "-x"],
            &["accounts", "extra"],
        ] {
            let err = parse(&args(bad)).unwrap_err();
            assert_eq!(err.exit_status(), ExitStatus::Usage, "{bad:?}");
        }
    }

    #[test]
    fn a_toml_file_is_not_imported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "host = \"relay.example\"\n").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = run(
            &args(&["import", path.to_str().unwrap()]),
            &mut out,
            &mut err,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not an msmtprc"), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn accounts_are_listed_in_file_order_for_toml_and_msmtprc() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("c.toml");
        std::fs::write(
            &toml,
            "[accounts.work]\nhost = \"a.example\"\n[accounts.home]\nhost = \"b.example\"\n",
        )
        .unwrap();
        let rc = dir.path().join("msmtprc");
        std::fs::write(
            &rc,
            "account club\nhost c.example\naccount work\nhost d.example\naccount default : work\n",
        )
        .unwrap();
        for (file, want) in [(&toml, "work\nhome\n"), (&rc, "club\nwork\ndefault\n")] {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let words = ["accounts", "--config", file.to_str().unwrap()];
            let status = run(&args(&words), &mut out, &mut err).unwrap();
            assert_eq!(status, ExitStatus::Ok);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{}", file.display());
        }
    }

    #[test]
    fn an_msmtprc_is_printed_as_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("msmtprc");
        std::fs::write(&path, "account default\nhost relay.example\ntls on\n").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = run(
            &args(&["import", path.to_str().unwrap()]),
            &mut out,
            &mut err,
        )
        .unwrap();
        assert_eq!(status, ExitStatus::Ok);
        let toml = String::from_utf8(out).unwrap();
        assert!(toml.contains("host = \"relay.example\"\n"), "{toml}");
        assert!(toml.contains("tls_trust_file = \"system\"\n"), "{toml}");
        assert!(err.is_empty());
    }
}
