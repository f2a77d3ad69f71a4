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

#[test]
fn completions_are_current() {
    for (shell, path) in [
        (Shell::Bash, "completions/smtpsend.bash"),
        (Shell::Zsh, "completions/_smtpsend"),
        (Shell::Fish, "completions/smtpsend.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "smtpsend", &mut out);
        check(path, &out);
    }
}
