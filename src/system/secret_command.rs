//! Commands that print a secret (`password_command`, `oauth_token_command`).

use std::process::{Command, Stdio};

/// `sh -c command` with no stdin and stderr shown, stdout captured: how every secret
/// helper (password or token) is run.
pub fn run_secret_command(command: &str) -> std::io::Result<std::process::Output> {
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
}
