//! Issue 15 (4): every TLS mistake explains itself. A refused certificate says what is
//! wrong with it, its SHA-256 fingerprint, and the line that would trust it, written for
//! where the relay came from (the command line, smtpsend's TOML, an msmtprc). Each message
//! is asserted whole: it is what a person reads in a cron mail.

use std::path::Path;

use crate::common::*;

/// The SHA-256 fingerprint as openssl prints it: upper-case hex pairs joined by colons.
fn colon_fingerprint(pki: &Pki) -> String {
    let hex = pki.fingerprint().to_ascii_uppercase();
    (0..hex.len())
        .step_by(2)
        .map(|i| &hex[i..i + 2])
        .collect::<Vec<_>>()
        .join(":")
}

/// The binary with `config` (written as given) as its only configuration, a private home,
/// and no relay on the command line: the relay is the config's.
fn smtpsend_with_config(dir: &Path, config: &str) -> assert_cmd::Command {
    let file = dir.join("config");
    std::fs::write(&file, config).expect("write config");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("create home");
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    cmd.timeout(CLIENT_LIMIT)
        .env("SMTPSEND_QUEUE_RUNNER", "off")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env_remove("SMTPSEND_PASSWORD")
        .arg("--config")
        .arg(&file)
        .args(["--no-queue", "-f", SENDER, RECIPIENT]);
    cmd
}

// ---------------------------------------------------------------------------------------
// Refused certificates: what is wrong, the fingerprint, the line that trusts it.

/// STARTTLS to a server presenting `pki`'s certificate, trusting `trust`'s trust file
/// (or nothing); exits 75 before MAIL. Returns stderr.
fn refused(pki: &Pki, trust: Option<&Pki>) -> String {
    let server = TestServer::starttls(pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "-f", SENDER, RECIPIENT]);
    if let Some(trust) = trust {
        cmd.arg("--tls-trust-file").arg(&trust.trust_file);
    }
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.never_saw("MAIL"));
    stderr(&out)
}

#[test]
fn an_expired_certificate_names_the_day_it_expired_and_the_pin_that_trusts_it() {
    let pki = Pki::ca_signed_expired();
    assert_eq!(
        refused(&pki, Some(&pki)),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate expired on 2021-01-01T00:00:00Z; to trust \
             this certificate by its SHA-256 fingerprint: --tls-fingerprint {}\n",
            colon_fingerprint(&pki)
        )
    );
}

#[test]
fn a_certificate_for_other_names_lists_them() {
    let pki = Pki::ca_signed_for(&["mail.example.org", "smtp.example.org"]);
    assert_eq!(
        refused(&pki, Some(&pki)),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate is issued for mail.example.org, \
             smtp.example.org, not 127.0.0.1; to trust this certificate by its SHA-256 \
             fingerprint: --tls-fingerprint {}\n",
            colon_fingerprint(&pki)
        )
    );
}

#[test]
fn an_untrusted_issuer_is_named_or_the_certificate_said_to_be_self_signed() {
    let pki = Pki::self_signed();
    assert_eq!(
        refused(&pki, None),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate issuer is not trusted: it is self-signed \
             by CN=localhost; to trust this certificate by its SHA-256 fingerprint: \
             --tls-fingerprint {}\n",
            colon_fingerprint(&pki)
        )
    );
    let pki = Pki::ca_signed();
    assert_eq!(
        refused(&pki, None),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate issuer CN=smtpsend test CA is not trusted; \
             to trust this certificate by its SHA-256 fingerprint: --tls-fingerprint {}\n",
            colon_fingerprint(&pki)
        )
    );
}

#[test]
fn a_pin_that_no_longer_matches_offers_the_new_one() {
    let pki = Pki::self_signed();
    let old = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "--tls-fingerprint", &old.fingerprint()])
        .args(["-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let fp = colon_fingerprint(&pki);
    assert_eq!(
        stderr(&out),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate {fp} is not the pinned one; if the \
             server's certificate was renewed, pin the new one: --tls-fingerprint {fp}\n"
        )
    );
}

/// The line a refusal gives, pasted into the config it names, makes the send go through:
/// the advice is exact, for smtpsend's TOML and for an msmtprc.
#[test]
fn the_line_a_refusal_gives_trusts_the_certificate_when_added_to_the_config() {
    let pki = Pki::self_signed_expired();
    let dir = tempfile::tempdir().unwrap();
    for (config, fixed) in [
        (
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\n",
            "tls_fingerprint = \"{fp}\"",
        ),
        (
            "account default\nhost 127.0.0.1\nport {port}\ntls on\ntls_starttls on\n",
            "tls_fingerprint {fp}",
        ),
    ] {
        let server = TestServer::starttls(&pki).connections(2).start();
        let config = config.replace("{port}", &server.port().to_string());
        let out = run(smtpsend_with_config(dir.path(), &config), MESSAGE);
        let err = stderr(&out);
        assert_eq!(code(&out), 75, "{err}");
        let line = fixed.replace("{fp}", &colon_fingerprint(&pki));
        let expected_start =
            "smtpsend: 127.0.0.1: TLS: certificate expired on 2021-01-01T00:00:00Z";
        assert!(err.starts_with(expected_start), "{err}");
        assert!(
            err.ends_with(&format!(
                "; to trust this certificate by its SHA-256 fingerprint: {line}\n"
            )),
            "{err}"
        );
        let out = run(
            smtpsend_with_config(dir.path(), &format!("{config}{line}\n")),
            MESSAGE,
        );
        let t = server.finish();
        assert_exit(&out, 0, &t);
        assert!(t.connections[1].message().tls);
    }
}
