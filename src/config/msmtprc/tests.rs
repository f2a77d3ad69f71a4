use super::*;
use crate::config::{Account, PasswordSource, SyslogFacility};
use crate::message::FromHeader;
use crate::smtp::session::Mechanism;
use crate::transport::TlsMode;
use std::path::PathBuf;

const FILE: &str = "/home/me/.msmtprc";

fn config(text: &str) -> Config {
    match parse(text, Path::new(FILE))
        .and_then(|m| m.into_config(Path::new(FILE), Some(Path::new("/home/me"))))
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn account(text: &str, name: &str) -> Account {
    match config(text).account(Some(name)) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    }
}

/// The message of a file that fails to load.
fn file_error(text: &str) -> String {
    match parse(text, Path::new(FILE)) {
        Err(Error::Config(msg)) => msg,
        Err(e) => panic!("expected a config error, got {e:?}"),
        Ok(_) => panic!("expected {text:?} to fail"),
    }
}

/// The message of an account that loads but cannot be used.
fn account_error(text: &str, name: &str) -> String {
    match config(text).account(Some(name)) {
        Err(e @ Error::Config(_)) => {
            assert_eq!(e.exit_status(), crate::ExitStatus::Config);
            e.to_string()
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn arguments_lose_surrounding_blanks_and_one_pair_of_quotes() {
    let text = "account q\n\
                host \t  relay.example  \t\n\
                tls on\n\
                auth on\n\
                user \"  spaced user  \"\n\
                password \"a\"b\"\n\
                from \"\"\n";
    let a = account(text, "q");
    assert_eq!(a.host.as_deref(), Some("relay.example"));
    assert_eq!(a.user.as_deref(), Some("  spaced user  "));
    assert_eq!(a.password, PasswordSource::Inline("a\"b".into()));
    assert_eq!(a.from, None, "\"\" is empty, which unsets");
}

#[test]
fn comments_are_whole_lines_only_and_crlf_is_read() {
    let text =
        "# a comment\r\n   \t# another\r\n\r\naccount x\r\nhost relay.example # not a comment\r\n";
    let a = account(text, "x");
    assert_eq!(a.host.as_deref(), Some("relay.example # not a comment"));
}

#[test]
fn commands_before_any_account_make_the_account_default() {
    let c = config("host relay.example\nfrom me@example.org\n");
    assert_eq!(c.account_names().collect::<Vec<_>>(), ["default"]);
    let a = c.account(None).unwrap();
    assert_eq!(a.host.as_deref(), Some("relay.example"));
    assert_eq!(a.from.as_deref(), Some("me@example.org"));
}

#[test]
fn msmtps_defaults_are_spelt_out_no_tls_port_25_no_auth() {
    let a = account("account plain\nhost relay.example\nuser u\n", "plain");
    assert_eq!(a.tls, Some(TlsMode::Off));
    assert_eq!(a.port, Some(25));
    assert_eq!(a.user, None, "no auth line: msmtp never authenticates");
    assert!(!a.auth_off);
    assert_eq!(a.tls_trust_file, None);
}

#[test]
fn tls_on_is_starttls_on_25_with_the_system_store() {
    let a = account("account s\nhost relay.example\ntls on\n", "s");
    assert_eq!(a.tls, Some(TlsMode::Required));
    assert_eq!(a.port, Some(25));
    assert_eq!(a.tls_trust_file, Some(PathBuf::from("system")));
    assert!(a.tls_verify);
}

#[test]
fn tls_starttls_off_is_implicit_tls_on_465() {
    let a = account(
        "account s\nhost relay.example\ntls on\ntls_starttls off\n",
        "s",
    );
    assert_eq!(a.tls, Some(TlsMode::Implicit));
    assert_eq!(a.port, Some(465));
    let old = account("account s\nhost relay.example\ntls\ntls_nostarttls\n", "s");
    assert_eq!(
        old.tls,
        Some(TlsMode::Implicit),
        "1.2's spelling, and empty = on"
    );
}

#[test]
fn defaults_apply_to_the_accounts_after_them_only() {
    let text = "defaults\nport 2525\naccount a\nhost a.example\n\
                defaults\nport 587\naccount b\nhost b.example\n";
    assert_eq!(account(text, "a").port, Some(2525));
    assert_eq!(account(text, "b").port, Some(587));
}

#[test]
fn an_account_takes_what_its_parents_set_in_order_then_its_own() {
    let text = "defaults\ntls on\n\
                account a\nhost a.example\nuser ua\nport 1001\n\
                account b\nhost b.example\nport 1002\n\
                account c : a, b\nfrom c@example.org\n\
                account d : c\nport 1004\n";
    let c = account(text, "c");
    assert_eq!(
        c.host.as_deref(),
        Some("b.example"),
        "the later parent wins"
    );
    assert_eq!(c.port, Some(1002));
    assert_eq!(c.from.as_deref(), Some("c@example.org"));
    let d = account(text, "d");
    assert_eq!(d.host.as_deref(), Some("b.example"), "inherited through c");
    assert_eq!(d.port, Some(1004), "its own line wins");
    assert_eq!(d.tls, Some(TlsMode::Required), "from the defaults");
}

#[test]
fn what_a_parent_had_from_the_defaults_does_not_pass_on() {
    // msmtp copies only what the parent set itself: b starts from the defaults as they
    // are when b begins, and a's port came from older defaults.
    let text = "defaults\nport 2525\naccount a\nhost a.example\n\
                defaults\nport 587\naccount b : a\n";
    let b = account(text, "b");
    assert_eq!(b.host.as_deref(), Some("a.example"));
    assert_eq!(b.port, Some(587));
}

#[test]
fn account_default_colon_name_makes_the_default_account() {
    let text = "account work\nhost work.example\nfrom me@work.example\n\
                account home\nhost home.example\n\
                account default : work\n";
    let c = config(text);
    let chosen = c.account(None).unwrap();
    assert_eq!(chosen.name, "default");
    assert_eq!(chosen.host.as_deref(), Some("work.example"));
    assert_eq!(chosen.from.as_deref(), Some("me@work.example"));
}

#[test]
fn the_envelope_sender_chooses_the_first_matching_account() {
    let text = "defaults\ntls on\n\
                account work\nhost work.example\nfrom me@work.example\n\
                account lists\nhost lists.example\nfrom *@lists.example\n\
                account default\nhost default.example\nfrom me@home.example\n";
    let c = config(text);
    let pick = |sender| c.account_for(None, Some(sender)).unwrap().name;
    assert_eq!(pick("me@work.example"), "work");
    assert_eq!(pick("Me+news@WORK.example"), "work");
    assert_eq!(pick("announce@lists.example"), "lists");
    assert_eq!(pick("stranger@elsewhere.example"), "default");
    assert_eq!(
        c.account_for(Some("lists"), Some("me@work.example"))
            .unwrap()
            .name,
        "lists",
        "-a wins over -f"
    );
    let lists = c.account(Some("lists")).unwrap();
    assert_eq!(lists.envelope_from(), None, "a pattern is no address");
}

#[test]
fn auth_mechanisms_users_and_password_sources_map_over() {
    let text = "defaults\ntls on\n\
                account eval\nhost h\nauth on\nuser me\npasswordeval pass show mail\n\
                account both : eval\npassword inline-wins\n\
                account plain : eval\nauth plain\n\
                account token : eval\nauth xoauth2\n";
    let eval = account(text, "eval");
    assert_eq!(eval.auth, None, "on: chosen from the server's offer");
    assert!(!eval.auth_off);
    assert_eq!(eval.user.as_deref(), Some("me"));
    assert_eq!(
        eval.password,
        PasswordSource::Command("pass show mail".into())
    );
    assert_eq!(
        account(text, "both").password,
        PasswordSource::Inline("inline-wins".into()),
        "msmtp runs passwordeval only when no password is set"
    );
    assert_eq!(account(text, "plain").auth, Some(Mechanism::Plain));
    assert_eq!(account(text, "token").auth, Some(Mechanism::XOAuth2));
}

#[test]
fn auth_off_with_a_client_certificate_says_so() {
    let text = "account c\nhost h\ntls on\ntls_cert_file /c.pem\ntls_key_file /k.pem\n";
    let a = account(text, "c");
    assert!(
        a.auth_off,
        "the certificate must not turn into AUTH EXTERNAL"
    );
    assert_eq!(a.tls_cert, Some(PathBuf::from("/c.pem")));
    assert_eq!(a.tls_key, Some(PathBuf::from("/k.pem")));
}

#[test]
fn tls_certcheck_off_without_auth_encrypts_without_verifying() {
    let sha256 = vec!["00"; 32].join(":");
    let a = account(
        &format!("account x\nhost h\ntls on\ntls_certcheck off\ntls_fingerprint {sha256}\n"),
        "x",
    );
    assert!(!a.tls_verify);
    assert_eq!(
        a.tls_fingerprint, None,
        "certcheck off overrides it, as in msmtp"
    );
    assert_eq!(a.tls_trust_file, None);
}

#[test]
fn credentials_need_verified_tls() {
    let msg = account_error(
        "account x\nhost h\ntls on\ntls_certcheck off\nauth on\nuser u\n",
        "x",
    );
    assert!(msg.contains("line 4: tls_certcheck off with auth"), "{msg}");
    assert!(msg.contains("insecure_auth"), "{msg}");
    let msg = account_error("account x\nhost h\nauth plain\nuser u\n", "x");
    assert!(msg.contains("line 3: auth without tls on"), "{msg}");
}

#[test]
fn fingerprints_sha256_pins_and_sha1_is_refused() {
    let sha256 = vec!["AB"; 32].join(":");
    let a = account(
        &format!("account x\nhost h\ntls on\ntls_fingerprint {sha256}\n"),
        "x",
    );
    assert_eq!(a.tls_fingerprint.as_deref(), Some(sha256.as_str()));
    assert_eq!(a.tls_trust_file, None);
    let spaced = vec!["ab"; 32].join(" ");
    let a = account(
        &format!("account x\nhost h\ntls on\ntls_fingerprint {spaced}\n"),
        "x",
    );
    assert_eq!(a.tls_fingerprint, Some(vec!["ab"; 32].join(":")));
    let sha1 = vec!["AB"; 20].join(":");
    let msg = account_error(
        &format!("account x\nhost h\ntls on\ntls_fingerprint {sha1}\n"),
        "x",
    );
    assert!(
        msg.contains("line 4: tls_fingerprint") && msg.contains("SHA-1"),
        "{msg}"
    );
    let msg = file_error("account x\nhost h\ntls_fingerprint AB:CD\n");
    assert!(msg.contains("line 3: invalid argument AB:CD for command tls_fingerprint"));
}

#[test]
fn unsupported_directives_make_only_their_accounts_unusable_naming_the_line() {
    let text = "account tor\nhost mail.example\ntls on\nproxy_host 127.0.0.1\nproxy_port 9050\n\
                account lmtp\nhost mail.example\nprotocol lmtp\n\
                account gss\nhost mail.example\ntls on\nauth gssapi\nuser u\n\
                account crl\nhost mail.example\ntls on\ntls_crl_file /crl.pem\n\
                account prio\nhost mail.example\ntls on\ntls_priorities NORMAL\n\
                account dh\nhost mail.example\ntls on\ntls_min_dh_prime_bits 512\n\
                account ntlm\nhost mail.example\nntlmdomain CORP\n\
                account sock\nhost mail.example\nsocket /run/smtp.sock\n\
                account bind\nhost mail.example\nsource_ip 192.0.2.1\n\
                account fine\nhost mail.example\n";
    let cases = [
        ("tor", "line 4: proxy_host 127.0.0.1"),
        ("lmtp", "line 8: protocol lmtp"),
        ("gss", "line 12: auth gssapi"),
        ("crl", "line 17: tls_crl_file /crl.pem"),
        ("prio", "line 21: tls_priorities NORMAL"),
        ("dh", "line 25: tls_min_dh_prime_bits 512"),
        ("ntlm", "line 28: ntlmdomain CORP"),
        ("sock", "line 31: socket /run/smtp.sock"),
        ("bind", "line 34: source_ip 192.0.2.1"),
    ];
    for (name, expected) in cases {
        let msg = account_error(text, name);
        assert!(msg.starts_with(FILE), "{msg}");
        assert!(
            msg.contains(&format!("account {name}: {expected}")),
            "{msg}"
        );
    }
    assert!(config(text).account(Some("fine")).is_ok());
}

#[test]
fn an_account_with_no_host_is_unusable_but_can_be_inherited_from() {
    let text = "account common\ntls on\nauth on\nuser u\n\
                account work : common\nhost work.example\n";
    let msg = account_error(text, "common");
    assert!(msg.contains("host not set"), "{msg}");
    let work = account(text, "work");
    assert_eq!(work.user.as_deref(), Some("u"));
}

#[test]
fn syntax_errors_fail_the_file_with_their_line() {
    let cases = [
        ("host a\nhots b\n", "line 2: unknown command hots"),
        (
            "account a\nport 0\n",
            "line 2: invalid argument 0 for command port",
        ),
        ("account a\nport 70000\n", "line 2: invalid argument 70000"),
        (
            "account a\nhost\n",
            "line 2: command host needs an argument",
        ),
        (
            "account a\ntls maybe\n",
            "line 2: invalid argument maybe for command tls",
        ),
        (
            "account a\naccount a\n",
            "line 2: account a was already defined",
        ),
        ("account b : a\n", "line 1: account a not (yet) defined"),
        ("account\n", "line 1: missing account name"),
        ("account a :\n", "line 1: missing account name"),
        ("defaults now\n", "line 1: defaults takes no argument"),
        (
            "account a\nauth magic\n",
            "line 2: invalid argument magic for command auth",
        ),
        (
            "account a\ndsn_notify failure,sometimes\n",
            "line 2: invalid argument",
        ),
        (
            "account a\nsyslog LOG_DAEMON\n",
            "line 2: invalid argument LOG_DAEMON",
        ),
        (
            "account a\neval echo host x\n",
            "line 2: eval: smtpsend does not run commands",
        ),
    ];
    for (text, expected) in cases {
        let msg = file_error(text);
        assert!(
            msg.starts_with(&format!("{FILE}: {expected}")),
            "{text:?}: {msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }
}

#[test]
fn harmless_directives_are_kept_as_notes() {
    let text = "defaults\nlogfile_time_format %F %T\nadd_missing_date_header off\n\
                remove_bcc_headers off\ntls_force_sslv3\n\
                account a\nhost h\nlogfile -\n";
    let c = config(text);
    let notes = c.notes();
    assert_eq!(notes.len(), 5, "{notes:?}");
    assert!(notes[0].starts_with(&format!("{FILE}: line 2: logfile_time_format")));
    assert!(notes[2].contains("line 4: remove_bcc_headers") && notes[2].contains("Bcc"));
    assert!(notes[4].contains("line 8: logfile"), "{notes:?}");
    assert_eq!(c.account(Some("a")).unwrap().logfile, None);
}

#[test]
fn message_and_logging_settings_map_over() {
    let text = "account a\nhost h\nset_from_header on\nundisclosed_recipients\n\
                dsn_notify failure,delay\ndsn_return headers\nsyslog\n\
                logfile ~/log/msmtp.log\naliases aliases.txt\ndomain client.example\n\
                timeout 30\n\
                account b\nhost h\nadd_missing_from_header off\nsyslog LOG_LOCAL3\n\
                timeout off\n";
    let a = account(text, "a");
    assert_eq!(a.set_from_header, FromHeader::Always);
    assert!(a.undisclosed_recipients);
    assert_eq!(a.dsn_notify.as_deref(), Some("failure,delay"));
    assert_eq!(a.dsn_return.as_deref(), Some("hdrs"));
    assert_eq!(
        a.syslog,
        Some(SyslogFacility::User),
        "msmtp's default facility"
    );
    assert_eq!(a.logfile, Some(PathBuf::from("/home/me/log/msmtp.log")));
    assert_eq!(a.aliases, Some(PathBuf::from("/home/me/aliases.txt")));
    assert_eq!(a.ehlo.as_deref(), Some("client.example"));
    assert_eq!(a.timeout, Some(30));
    let b = account(text, "b");
    assert_eq!(b.set_from_header, FromHeader::Never);
    assert_eq!(b.syslog, Some(SyslogFacility::Local(3)));
    assert_eq!(b.timeout, None);
}

#[test]
fn relative_file_names_are_relative_to_the_file_wherever_it_was_named_from() {
    let text = "account a\nhost h\naliases sub/aliases\nlogfile /var/log/x\n";
    let relative = parse(text, Path::new("conf/msmtprc"))
        .and_then(|m| m.into_config(Path::new("conf/msmtprc"), None))
        .unwrap();
    let a = relative.account(Some("a")).unwrap();
    assert_eq!(a.aliases, Some(PathBuf::from("conf/sub/aliases")));
    assert_eq!(a.logfile, Some(PathBuf::from("/var/log/x")));
    assert_eq!(
        account(text, "a").aliases,
        Some(PathBuf::from("/home/me/sub/aliases"))
    );
}

#[test]
fn auto_from_builds_the_sender_from_the_login_name() {
    let a = account(
        "account a\nhost h\nauto_from on\nmaildomain example.org\n",
        "a",
    );
    let from = a.from.unwrap();
    assert!(
        from.ends_with("@example.org") && !from.starts_with('%'),
        "{from}"
    );
}

#[test]
fn msmtprc_syntax_is_told_from_toml() {
    assert!(looks_like_msmtprc("# c\n\naccount gmail\nhost x\n"));
    assert!(looks_like_msmtprc("defaults\n"));
    assert!(looks_like_msmtprc("  host\tsmtp.example.org\n"));
    assert!(!looks_like_msmtprc("host = \"smtp.example.org\"\n"));
    assert!(!looks_like_msmtprc("host=\"x\"\n"));
    assert!(!looks_like_msmtprc("[accounts.work]\nhost = \"x\"\n"));
    assert!(!looks_like_msmtprc("# only a comment\n"));
    assert!(!looks_like_msmtprc("hostname x\n"));
}

#[test]
fn a_file_with_only_defaults_has_no_account() {
    let c = config("defaults\ntls on\n");
    let err = c.account(None).unwrap_err();
    assert!(err.to_string().contains("defines no account"), "{err}");
}

#[test]
fn several_accounts_and_no_default_say_how_to_choose() {
    let c = config("account a\nhost a\naccount b\nhost b\n");
    let err = c.account(None).unwrap_err().to_string();
    assert!(err.contains("account default : NAME"), "{err}");
}

#[test]
fn holding_a_password_and_running_a_command_are_seen() {
    let m = parse("account a\nhost h\npassword x\n", Path::new(FILE)).unwrap();
    assert!(m.holds_password && !m.runs_command);
    let m = parse("account a\nhost h\npasswordeval cat pw\n", Path::new(FILE)).unwrap();
    assert!(!m.holds_password && m.runs_command);
    let m = parse("account a\nhost h\npassword\n", Path::new(FILE)).unwrap();
    assert!(!m.holds_password, "an empty password unsets");
}

const MANUAL_LIKE: &str = "\
# Ours, in the shape of msmtp's example
defaults
port 587
tls on
tls_trust_file /etc/ssl/certs/ca-certificates.crt
logfile_time_format %Y

account freemail
host smtp.freemail.example
from joe@freemail.example
auth on
user joe.smith
passwordeval gpg --no-tty -q -d ~/.mail-password.gpg

account freemail2 : freemail
from joey@freemail.example

account isp
host mail.isp.example
from smithjoe@isp.example
auth on
user 12345
passwordeval cat ~/.isp-password

account default : freemail
";

fn imported(text: &str) -> String {
    match import(text, Path::new(FILE)) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn import_round_trips_and_keeps_the_inheritance() {
    let toml = imported(MANUAL_LIKE);
    let back = Config::parse_with_home(&toml, Path::new(FILE), Some(Path::new("/home/me")))
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let ours = config(MANUAL_LIKE);
    for name in ["freemail", "freemail2", "isp", "default"] {
        let ours = ours.account(Some(name)).unwrap();
        assert_eq!(ours.config_kind, ConfigKind::Msmtprc);
        assert_eq!(
            back.account(Some(name)).unwrap(),
            Account {
                config_kind: ConfigKind::Toml,
                ..ours
            },
            "{toml}"
        );
    }
    assert_eq!(back.account(None).unwrap().name, "default");
    assert!(toml.contains("default_account = \"default\"\n"), "{toml}");
    assert!(
        toml.contains("\nport = 587\ntls = \"required\"\n"),
        "shared keys on top: {toml}"
    );
    assert!(
        toml.contains(
            "[accounts.freemail2]\ninherits = \"freemail\"\nfrom = \"joey@freemail.example\"\n\n"
        ),
        "{toml}"
    );
    assert!(
        toml.contains("[accounts.default]\ninherits = \"freemail\"\n"),
        "{toml}"
    );
    assert!(
        toml.contains("# /home/me/.msmtprc: line 6: logfile_time_format"),
        "{toml}"
    );
    assert!(toml.lines().count() < 40, "{toml}");
}

#[test]
fn import_of_a_single_default_account_is_a_flat_file() {
    let toml = imported("host relay.example\nfrom me@example.org\n");
    assert!(!toml.contains("[accounts"), "{toml}");
    assert!(
        toml.contains("\nhost = \"relay.example\"\nport = 25\ntls = \"off\"\n"),
        "{toml}"
    );
}

#[test]
fn import_leaves_out_a_base_without_host_and_refuses_what_cannot_be_converted() {
    let toml = imported(
        "account common\ntls on\nauth on\nuser u\npasswordeval pw\n\
         account work : common\nhost work.example\n\
         account home : common\nhost home.example\n",
    );
    assert!(
        toml.contains("# account common (line 1) is left out"),
        "{toml}"
    );
    assert!(!toml.contains("[accounts.common]"), "{toml}");
    assert!(!toml.contains("inherits"), "{toml}");
    let err = import(
        "account tor\nhost h\nproxy_host 127.0.0.1\naccount ok\nhost h\n",
        Path::new(FILE),
    )
    .unwrap_err();
    assert_eq!(err.exit_status(), crate::ExitStatus::Config);
    assert!(
        err.to_string()
            .contains("account tor: line 3: proxy_host 127.0.0.1"),
        "{err}"
    );
}

#[test]
fn import_quotes_account_names_toml_cannot_take_bare() {
    let toml = imported("account my mail\nhost a\naccount b.c\nhost b\n");
    assert!(toml.contains("[accounts.\"my mail\"]"), "{toml}");
    assert!(toml.contains("[accounts.\"b.c\"]"), "{toml}");
}
