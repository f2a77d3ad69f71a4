//! The checked-in man page and shell completions are generated from the clap definitions;
//! these tests fail when they are stale. `SMTPSEND_UPDATE_DOCS=1 cargo test --test integration docs::`
//! rewrites them.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use smtpsend::app::cli::Cli;

fn check(path: &str, generated: &[u8]) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("SMTPSEND_UPDATE_DOCS").is_some() {
        std::fs::write(&full, generated).expect("write generated file");
        return;
    }
    let current = std::fs::read(&full).unwrap_or_default();
    assert!(
        current == generated,
        "{path} is stale: run SMTPSEND_UPDATE_DOCS=1 cargo test --test integration docs::"
    );
}

/// The page: clap's name, synopsis, description and options, then the hand-written
/// sections from man/sections.roff.
fn man_page() -> Vec<u8> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd)
        .section("1")
        .manual("smtpsend manual")
        .source(format!("smtpsend {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    let extra = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/sections.roff");
    out.extend_from_slice(&std::fs::read(extra).expect("man/sections.roff"));
    out
}

#[test]
fn man_page_is_current() {
    check("man/smtpsend.1", &man_page());
}

#[test]
fn man_page_documents_every_exit_status() {
    let page = String::from_utf8(man_page()).unwrap();
    for code in [64, 65, 66, 67, 68, 69, 70, 74, 75, 76, 77, 78] {
        assert!(page.contains(&format!(".B {code}")), "exit status {code}");
    }
}

/// The command that lists the account names of the config smtpsend reads (TOML or
/// msmtprc, `$SMTPSEND_CONFIG` honoured), for `-a`: clap knows no values it cannot list
/// when the script is made.
const ACCOUNTS: &str = "smtpsend config accounts 2>/dev/null";

/// clap's script for `shell` with `-a`/`--account` completed from [`ACCOUNTS`]. Each
/// replacement must find what it replaces, so a change in clap_complete's output fails
/// here rather than leaving file names offered for an account.
fn completion(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "smtpsend", &mut out);
    let mut script = String::from_utf8(out).expect("UTF-8 script");
    let replace = |script: &mut String, from: &str, to: &str| {
        assert!(
            script.contains(from),
            "{shell}: {from:?} not in clap's script"
        );
        *script = script.replace(from, to);
    };
    match shell {
        Shell::Bash => {
            for flag in ["--account", "-a"] {
                replace(
                    &mut script,
                    &format!(
                        "                {flag})\n                    COMPREPLY=($(compgen -f \"${{cur}}\"))"
                    ),
                    &format!(
                        "                {flag})\n                    COMPREPLY=($(compgen -W \"$({ACCOUNTS})\" -- \"${{cur}}\"))"
                    ),
                );
            }
        }
        Shell::Zsh => {
            for flag in ["'-a+", "'--account="] {
                replace(
                    &mut script,
                    &format!("{flag}[Account from the config file]:NAME:_default'"),
                    &format!(
                        "{flag}[Account from the config file]:NAME:{{compadd -- ${{(f)\"$({ACCOUNTS})\"}}}}'"
                    ),
                );
            }
        }
        Shell::Fish => replace(
            &mut script,
            "-l account -d 'Account from the config file' -r",
            &format!("-l account -d 'Account from the config file' -r -f -a '({ACCOUNTS})'"),
        ),
        _ => {}
    }
    script.into_bytes()
}

#[test]
fn completions_are_current() {
    for (shell, path) in [
        (Shell::Bash, "completions/smtpsend.bash"),
        (Shell::Zsh, "completions/_smtpsend"),
        (Shell::Fish, "completions/smtpsend.fish"),
    ] {
        check(path, &completion(shell));
    }
}

/// Bash, with the script and the real binary first on PATH, completes `-a` with
/// the account names of the user's msmtprc, `--tls` with the modes and `--auth` with the
/// mechanisms.
#[test]
fn bash_completes_accounts_tls_modes_and_mechanisms() {
    let Ok(bash) = which("bash") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "bash is not installed"
        );
        eprintln!("skipped: bash is not installed");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_smtpsend"), bin.join("smtpsend"))
        .expect("symlink");
    let rc = dir.path().join(".msmtprc");
    std::fs::write(
        &rc,
        "account work\nhost a.example\nfrom *@work.example\n\naccount club\nhost b.example\n",
    )
    .expect("msmtprc");
    // The script as generated (which `completions_are_current` holds the checked-in one
    // to), not the file, which an update run may be rewriting at this moment.
    let script = dir.path().join("smtpsend.bash");
    std::fs::write(&script, completion(Shell::Bash)).expect("write script");
    let complete = |words: &str| -> String {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _smtpsend smtpsend \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = std::process::Command::new(&bash)
            .args(["--norc", "--noprofile", "-c", &program])
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join(".config"))
            .env_remove("SMTPSEND_CONFIG")
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    assert_eq!(complete("smtpsend -a ''"), "work\nclub\n");
    assert_eq!(complete("smtpsend --account c"), "club\n");
    assert_eq!(
        complete("smtpsend --tls ''"),
        "required\nopportunistic\nimplicit\noff\n"
    );
    assert_eq!(
        complete("smtpsend --auth scram"),
        "scram-sha-256\nscram-sha-1\n"
    );
}

/// The path of `program` on PATH.
fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}
