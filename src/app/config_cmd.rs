//! `smtpsend config import [FILE]`: an msmtprc as the equivalent smtpsend TOML, on
//! standard output, for a user moving over for good. `smtpsend config accounts`: the
//! names of the accounts of the config smtpsend reads (TOML or msmtprc), one a line, which
//! the shell completions offer for `-a`. `smtpsend config dkim-record`: the DNS record
//! that publishes an account's DKIM key.
//!
//! Recipients are positional, so clap cannot have subcommands; `main` hands over when the
//! first argument is `config` and the program was not called as `sendmail`, where
//! `sendmail config` must still mail the local user "config".

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{self, ConfigKind};
use crate::message::dkim::Signer;
use crate::system::private::open_failure;
use crate::{Error, ExitStatus};

const USAGE: &str = "usage: smtpsend config import [FILE]\n       \
smtpsend config accounts [--config FILE]\n       \
smtpsend config dkim-record [-a NAME] [--config FILE]\n\n\
import       print an msmtprc as smtpsend TOML (FILE defaults to the msmtprc msmtp would\n             \
read: ~/.msmtprc, $XDG_CONFIG_HOME/msmtp/config, /etc/msmtprc); save it as\n             \
~/.config/smtpsend/config.toml\n\
accounts     list the account names of the config smtpsend reads (or FILE), one a line\n\
dkim-record  print the DNS TXT record that publishes the DKIM key of the account (-a NAME,\n             \
else the default one), in zone file form";

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
    DkimRecord {
        config: Option<PathBuf>,
        account: Option<String>,
    },
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
        ["dkim-record", rest @ ..] => dkim_record_args(rest).map_err(usage),
        [other, ..] => Err(usage(format!("unknown command {other:?}"))),
    }
}

/// `dkim-record [-a NAME] [--config FILE]`.
fn dkim_record_args(words: &[&str]) -> Result<Request, String> {
    let (mut config, mut account) = (None, None);
    let mut words = words.iter();
    while let Some(&word) = words.next() {
        let mut value = |what: &str| {
            words
                .next()
                .map(|v| v.to_string())
                .ok_or_else(|| format!("{word} needs {what}"))
        };
        match word {
            "-h" | "--help" => return Ok(Request::Help),
            "-a" | "--account" => account = Some(value("a NAME")?),
            "-C" | "--config" => config = Some(PathBuf::from(value("a FILE")?)),
            _ if word.starts_with("--config=") => {
                config = Some(PathBuf::from(&word["--config=".len()..]));
            }
            _ => return Err(format!("dkim-record: unknown argument {word}")),
        }
    }
    Ok(Request::DkimRecord { config, account })
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
        Request::DkimRecord { config, account } => {
            let record = dkim_record(config.as_deref(), account.as_deref())?;
            let _ = writeln!(out, "{record}");
            return Ok(ExitStatus::Ok);
        }
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

/// The TXT record for the DKIM key of `account` in the config, as a zone file line:
/// `SELECTOR._domainkey.DOMAIN. IN TXT "..."`. The domain is `dkim_domain`, else the
/// domain of the account's `from` (each message is signed for its From domain).
fn dkim_record(config: Option<&Path>, account: Option<&str>) -> Result<String, Error> {
    let config = config::load(config)?.ok_or_else(|| {
        Error::Config("config dkim-record: no config file; set dkim_key in one".into())
    })?;
    let account = config.account(account)?;
    let Some(keys) = &account.dkim else {
        return Err(Error::Config(format!(
            "{}: account {} has no dkim_key",
            config.origin().display(),
            account.name
        )));
    };
    let signer = Signer::load(keys)?;
    let from_domain = account
        .envelope_from()
        .and_then(|f| f.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase());
    let Some(domain) = signer.domain().map(str::to_string).or(from_domain) else {
        return Err(Error::Config(format!(
            "{}: account {}: no dkim_domain and no from address to take the domain from; \
             set dkim_domain",
            config.origin().display(),
            account.name
        )));
    };
    Ok(zone_line(
        &format!("{}._domainkey.{domain}.", signer.selector()),
        &signer.dns_record(),
    ))
}

/// `NAME IN TXT "..." "..."`: a TXT record's strings are at most 255 octets each (RFC
/// 1035 §3.3.14), so a longer value (an RSA key) is split; verifiers join them again
/// (RFC 6376 §3.6.2.2). The value is ASCII without quotes or backslashes.
fn zone_line(name: &str, value: &str) -> String {
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|piece| format!("\"{}\"", String::from_utf8_lossy(piece)))
        .collect();
    format!("{name} IN TXT {}", strings.join(" "))
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
    fn dkim_record_takes_an_account_and_a_config() {
        assert_eq!(
            parse(&args(&["dkim-record"])).unwrap(),
            Request::DkimRecord {
                config: None,
                account: None
            }
        );
        assert_eq!(
            parse(&args(&["dkim-record", "-a", "work", "--config=/c.toml"])).unwrap(),
            Request::DkimRecord {
                config: Some("/c.toml".into()),
                account: Some("work".into())
            }
        );
        for bad in [&["dkim-record", "-a"][..], &["dkim-record", "work"]] {
            let err = parse(&args(bad)).unwrap_err();
            assert_eq!(err.exit_status(), ExitStatus::Usage, "{bad:?}");
        }
    }

    #[test]
    fn a_long_txt_value_is_split_into_strings_of_255_octets() {
        let value = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
        let line = zone_line("s._domainkey.example.org.", &value);
        let strings: Vec<&str> = line
            .strip_prefix("s._domainkey.example.org. IN TXT \"")
            .and_then(|l| l.strip_suffix('"'))
            .unwrap()
            .split("\" \"")
            .collect();
        assert_eq!(strings.len(), 2, "{line}");
        assert_eq!(strings[0].len(), 255);
        assert_eq!(strings.concat(), value);
        assert_eq!(
            zone_line("n.", "v=DKIM1; k=ed25519; p=x"),
            "n. IN TXT \"v=DKIM1; k=ed25519; p=x\""
        );
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
