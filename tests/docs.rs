//! The checked-in man page and shell completions are generated from the clap definitions;
//! these tests fail when they are stale, and when README, ARCHITECTURE.md or the man
//! sections name an option that does not exist or show a config that does not parse. `SMTPSEND_UPDATE_DOCS=1 cargo test --test integration docs::`
//! rewrites them.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use smtpsend::app::cli::Cli;
use smtpsend::config::Config;

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

/// Every long option smtpsend accepts, its subcommands' included, hidden ones too.
fn known_flags() -> std::collections::BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut std::collections::BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            out.extend(arg.get_long().map(|l| format!("--{l}")));
            out.extend(
                arg.get_all_aliases()
                    .into_iter()
                    .flatten()
                    .map(|l| format!("--{l}")),
            );
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut flags = std::collections::BTreeSet::new();
    let mut cmd = Cli::command();
    cmd.build();
    walk(&cmd, &mut flags);
    flags
}

/// Options of other programs that the documents show: cargo's, groupadd's and the
/// loopback sink's.
const OTHER_PROGRAMS_OPTIONS: [&str; 6] = [
    "--release",
    "--test",
    "--bench",
    "--path",
    "--system",
    "--once",
];

/// Every `--name` in `text`.
fn long_options(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 2..];
        // `---` is a rule, `a--b` not an option.
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            found.push(format!("--{name}"));
        }
    }
    found
}

/// README, ARCHITECTURE.md and the hand-written man sections name only options that
/// exist: a renamed flag fails here, not in a reader's shell.
#[test]
fn documents_name_only_options_that_exist() {
    let known = known_flags();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut unknown = std::collections::BTreeSet::new();
    let mut checked = std::collections::BTreeSet::new();
    for doc in ["README.md", "ARCHITECTURE.md", "man/sections.roff"] {
        let text = std::fs::read_to_string(root.join(doc)).expect(doc);
        // roff escapes the hyphens of options.
        let text = text.replace("\\-", "-");
        for flag in long_options(&text) {
            if OTHER_PROGRAMS_OPTIONS.contains(&flag.as_str()) {
                continue;
            }
            if !known.contains(&flag) {
                unknown.insert(format!("{doc}: {flag}"));
            }
            checked.insert(flag);
        }
    }
    assert!(
        checked.len() >= 40,
        "the documents' options were not found ({})",
        checked.len()
    );
    assert!(
        unknown.is_empty(),
        "options that do not exist:\n{}",
        unknown.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Every TOML example in README parses as a config file, and so does each with one of its
/// commented-out settings switched on: no example carries a key or value smtpsend would
/// refuse.
#[test]
fn readme_config_examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut blocks = 0;
    let mut settings = 0;
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + "```toml\n".len()..];
        let end = body.find("```").expect("a closed toml block");
        let example = &body[..end];
        let readme = Path::new("README.md");
        if let Err(e) = Config::parse(example, readme) {
            panic!("README example does not parse: {e}\n{example}");
        }
        // The settings shown commented out (`# key = value`) must be known keys with values
        // of their type too: the block with all of them switched on. How they go together
        // is not judged (some exclude each other).
        let switched_on: String = example
            .lines()
            .map(|line| match line.strip_prefix('#').map(str::trim_start) {
                Some(setting) if is_setting(setting) => {
                    settings += 1;
                    setting
                }
                _ => line,
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        if let Err(e) = Config::check_keys(&switched_on, readme) {
            panic!("a commented setting of README is refused: {e}\n{switched_on}");
        }
        blocks += 1;
        rest = &body[end..];
    }
    assert!(
        blocks >= 5,
        "README's config examples were not found ({blocks})"
    );
    assert!(
        settings >= 20,
        "README's commented settings were not found ({settings})"
    );
}

/// `key = value`: a config line, not prose.
fn is_setting(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(key, _)| {
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    })
}
