//! `oauth_token_command`: a program that prints a fresh access token (oama, mutt's
//! `mutt_oauth2.py`, a vault client).

use super::OAuthError;
use super::token::first_line;

/// Runs `sh -c command`, like `password_command`: nothing on its argv but the command
/// itself, no stdin (it must not eat the message), stderr shown (such helpers explain
/// themselves there), stdout never echoed. The first line of its output is the token.
///
/// Its exit status is read as sysexits: 75 (EX_TEMPFAIL) means try again later, 77
/// (EX_NOPERM) that someone must sign in again; any other failure is a config error.
pub fn run(command: &str) -> Result<String, OAuthError> {
    let output = crate::system::secret_command::run_secret_command(command).map_err(|e| {
        OAuthError::Config(format!(
            "oauth_token_command `{command}`: cannot run sh: {e}"
        ))
    })?;
    if !output.status.success() {
        let message = format!("oauth_token_command `{command}` failed ({})", output.status);
        return Err(match output.status.code() {
            Some(75) => OAuthError::Transient(message),
            Some(77) => {
                OAuthError::NeedsLogin(format!("{message}; sign in again through that program"))
            }
            _ => OAuthError::Config(message),
        });
    }
    first_line(output.stdout).map_err(|problem| {
        OAuthError::Config(format!("oauth_token_command `{command}`: {problem}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_of_output() {
        assert_eq!(run("printf 'tok\\nmore\\n'").unwrap(), "tok");
    }

    #[test]
    fn gets_no_stdin() {
        assert_eq!(run("cat; echo fallback").unwrap(), "fallback");
    }

    #[test]
    fn exit_status_is_read_as_sysexits() {
        assert!(matches!(run("exit 75"), Err(OAuthError::Transient(_))));
        assert!(run("exit 77").unwrap_err().needs_login());
        // Split in the command text, so only its output reads "secret-tok".
        let err = run("printf secret; printf -- '-tok\\n'; exit 1").unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
        assert!(err.to_string().contains("exit status: 1"), "{err}");
        assert!(!err.to_string().contains("secret-tok"), "{err}");
    }

    #[test]
    fn empty_output_is_refused() {
        assert!(run("true").unwrap_err().to_string().contains("empty"));
    }
}
